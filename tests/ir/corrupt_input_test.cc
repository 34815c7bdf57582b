// Truncated and bit-flipped models: the loader (and shape inference and the summary after it)
// must either work or throw graft::Error. Never crash, never hang.
#include <gtest/gtest.h>

#include <random>

#include "graft/core/error.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"
#include "graft/ir/summary.h"
#include "test_graphs.h"

namespace graft::ir {
namespace {

// Returns true if the bytes loaded; throws only graft::Error.
bool try_everything(const std::string& bytes) {
  try {
    Graph g = parse(bytes, "/tmp", "corrupt.onnx");
    infer_shapes(g);
    summarize(g);
    return true;
  } catch (const Error&) {
    return false;
  }
}

TEST(CorruptInputTest, TruncatedModelsAreErrors) {
  const std::string bytes = serialize(testing::small_convnet());
  ASSERT_TRUE(try_everything(bytes));
  int loaded = 0;
  for (size_t len = 0; len < bytes.size(); len += 1 + len / 50) {
    loaded += try_everything(bytes.substr(0, len));
  }
  // A prefix may happen to be a valid model only if it ends exactly between graph fields.
  EXPECT_LT(loaded, 5);
}

TEST(CorruptInputTest, BitFlippedModelsNeverCrash) {
  const std::string bytes = serialize(testing::small_convnet());
  std::mt19937 rng(1234);
  int errors = 0;
  constexpr int kTrials = 3000;
  for (int trial = 0; trial < kTrials; ++trial) {
    std::string copy = bytes;
    const int flips = 1 + trial % 4;
    for (int f = 0; f < flips; ++f) {
      const size_t pos = rng() % copy.size();
      copy[pos] = static_cast<char>(copy[pos] ^ (1u << (rng() % 8)));
    }
    errors += !try_everything(copy);
  }
  EXPECT_GT(errors, 0);  // the corruption is real: some copies must be refused
}

TEST(CorruptInputTest, RandomBytesAreRefused) {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 200; ++trial) {
    std::string junk(1 + rng() % 5000, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    EXPECT_FALSE(try_everything(junk));
  }
}

}  // namespace
}  // namespace graft::ir
