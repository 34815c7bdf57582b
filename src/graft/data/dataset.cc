#include "graft/data/dataset.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "graft/core/error.h"
#include "graft/core/log.h"
#include "graft/data/npy.h"

namespace graft::data {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kFashionMnistClasses = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

// The whole (possibly gzip-compressed) file.
std::string read_maybe_gzip(const std::string& path) {
  if (!fs::exists(path)) throw Error(path + ": no such file");
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw Error(path + ": cannot open");
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int err = 0;
      const std::string msg = gzerror(f, &err);
      gzclose(f);
      throw Error(path + ": corrupt or truncated (" + msg + ")");
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  gzclose(f);
  return out;
}

uint32_t be32(const std::string& b, size_t at) {
  return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) |
         (uint32_t(uint8_t(b[at + 2])) << 8) | uint32_t(uint8_t(b[at + 3]));
}

// An IDX file of unsigned bytes: its dimensions and payload.
at::Tensor read_idx_file(const std::string& path, int want_dims) {
  const std::string b = read_maybe_gzip(path);
  if (b.size() < 4 || b[0] != 0 || b[1] != 0) throw Error(path + ": not an IDX file (bad magic)");
  if (uint8_t(b[2]) != 0x08) throw Error(path + ": IDX element type " + std::to_string(uint8_t(b[2])) + " is not unsigned byte");
  const int dims = uint8_t(b[3]);
  if (dims != want_dims) {
    throw Error(path + ": has " + std::to_string(dims) + " dimensions, expected " + std::to_string(want_dims));
  }
  if (b.size() < 4 + 4 * size_t(dims)) throw Error(path + ": truncated header");
  std::vector<int64_t> sizes;
  uint64_t count = 1, bound = 1;  // bound: the product of the sizes, zeros counted as ones
  for (int i = 0; i < dims; ++i) {
    sizes.push_back(be32(b, 4 + 4 * size_t(i)));
    count *= static_cast<uint64_t>(sizes.back());
    bound *= std::max<uint64_t>(static_cast<uint64_t>(sizes.back()), 1);
    if (bound > b.size()) {  // (also before the product of the sizes could overflow)
      throw Error(path + ": its header's sizes need more bytes than the file holds (truncated or corrupt)");
    }
  }
  const size_t offset = 4 + 4 * size_t(dims);
  if (b.size() - offset != count) {
    throw Error(path + ": holds " + std::to_string(b.size() - offset) + " bytes of data, its header says " +
                std::to_string(count) + " (truncated or corrupt)");
  }
  at::Tensor t = at::empty(sizes, at::kByte);
  if (count > 0) std::memcpy(t.data_ptr(), b.data() + offset, count);
  return t;
}

std::string find_idx(const std::string& dir, const std::string& stem) {
  for (const char* ext : {".gz", ""}) {
    const std::string p = dir + "/" + stem + ext;
    if (fs::exists(p)) return p;
  }
  throw Error(dir + ": no " + stem + "[.gz] (an IDX dataset directory needs train- and t10k- image and label files)");
}

bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

Dataset read_folder(const std::string& dir) {
  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  }
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) throw Error(dir + ": no class subfolders (expected DIR/<class>/<image>.png)");
  std::vector<at::Tensor> images;
  std::vector<int64_t> labels;
  int64_t h = 0, w = 0;
  bool resized = false;
  for (size_t c = 0; c < classes.size(); ++c) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(fs::path(dir) / classes[c])) {
      if (e.is_regular_file() && is_image(e.path())) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      at::Tensor img = read_image(f.string(), 3);
      if (images.empty()) {
        h = img.size(0);
        w = img.size(1);
      } else if (img.size(0) != h || img.size(1) != w) {
        resized = true;
        img = at::upsample_bilinear2d(img.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat), {h, w}, false)
                  .squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(at::kByte);
      }
      images.push_back(img);
      labels.push_back(static_cast<int64_t>(c));
    }
  }
  if (images.empty()) throw Error(dir + ": the class subfolders hold no PNG/JPEG/BMP images");
  if (resized) log::warn(dir + ": images differ in size; resized to the first one's " + std::to_string(h) + "x" + std::to_string(w));
  Dataset d;
  d.images = at::stack(images);
  d.labels = at::tensor(labels, at::kLong);
  d.classes = classes;
  d.origin = dir;
  return d;
}

}  // namespace

Dataset read_idx(const std::string& images, const std::string& labels) {
  Dataset d;
  d.images = read_idx_file(images, 3).unsqueeze(3);
  d.labels = read_idx_file(labels, 1).to(at::kLong);
  if (d.images.size(0) != d.labels.size(0)) {
    throw Error(images + " holds " + std::to_string(d.images.size(0)) + " images but " + labels + " holds " +
                std::to_string(d.labels.size(0)) + " labels");
  }
  d.origin = images;
  return d;
}

Dataset open_dataset(const std::string& spec, const std::string& split) {
  if (split != "train" && split != "test") throw Error("unknown split '" + split + "' (train or test)");
  const size_t comma = spec.find(',');
  if (comma != std::string::npos) {
    const std::string xs = spec.substr(0, comma), ys = spec.substr(comma + 1);
    Dataset d;
    at::Tensor x = read_npy(xs);
    if (x.scalar_type() != at::kByte || (x.dim() != 3 && x.dim() != 4)) {
      throw Error(xs + ": images must be uint8 (N, H, W) or (N, H, W, C)");
    }
    d.images = x.dim() == 3 ? x.unsqueeze(3) : x;
    at::Tensor y = read_npy(ys);
    if (y.is_floating_point() || y.dim() != 1) throw Error(ys + ": labels must be a 1-D integer array");
    d.labels = y.to(at::kLong);
    if (d.images.size(0) != d.labels.size(0)) {
      throw Error(xs + " holds " + std::to_string(d.images.size(0)) + " images but " + ys + " holds " +
                  std::to_string(d.labels.size(0)) + " labels");
    }
    d.origin = xs;
    return d;
  }
  const std::string dir = spec == "fashion-mnist" ? kFashionMnistDir : spec;
  if (!fs::is_directory(dir)) {
    throw Error(dir + ": no such directory" +
                (spec == "fashion-mnist" ? " (install Debian's dataset-fashion-mnist; scripts/build.sh does)" : ""));
  }
  const std::string prefix = split == "train" ? "train" : "t10k";
  if (fs::exists(dir + "/" + prefix + "-images-idx3-ubyte.gz") || fs::exists(dir + "/" + prefix + "-images-idx3-ubyte")) {
    Dataset d = read_idx(find_idx(dir, prefix + "-images-idx3-ubyte"), find_idx(dir, prefix + "-labels-idx1-ubyte"));
    if (spec == "fashion-mnist" || dir.find("fashion") != std::string::npos) d.classes = kFashionMnistClasses;
    return d;
  }
  if (fs::is_directory(dir + "/" + split)) return read_folder(dir + "/" + split);
  return read_folder(dir);
}

Dataset head(const Dataset& d, int64_t n) {
  if (n <= 0 || n >= d.size()) return d;
  Dataset out = d;
  out.images = d.images.slice(0, 0, n);
  out.labels = d.labels.slice(0, 0, n);
  return out;
}

void check_labels(const Dataset& d, int64_t classes) {
  if (d.size() == 0) throw Error(d.origin + ": the dataset is empty");
  const int64_t lo = d.labels.min().item<int64_t>(), hi = d.labels.max().item<int64_t>();
  if (lo < 0 || hi >= classes) {
    const int64_t bad = lo < 0 ? lo : hi;
    const int64_t index = at::nonzero(d.labels == bad)[0][0].item<int64_t>();
    throw Error(d.origin + ": label " + std::to_string(bad) + " of example " + std::to_string(index) +
                " is outside the model's " + std::to_string(classes) + " classes");
  }
}

at::Tensor preprocess_batch(const at::Tensor& images, const Preprocess& p) {
  at::Tensor x = images.permute({0, 3, 1, 2}).to(at::kFloat);  // (B, C, H, W)
  if (x.size(1) == 1 && p.channels == 3) x = x.expand({-1, 3, -1, -1});
  if (x.size(1) == 3 && p.channels == 1) {
    x = (x.select(1, 0) * 0.299 + x.select(1, 1) * 0.587 + x.select(1, 2) * 0.114).unsqueeze(1);
  }
  if (p.bgr && x.size(1) == 3) x = x.flip({1});
  if (x.size(2) != p.height || x.size(3) != p.width) {
    x = at::upsample_bilinear2d(x.contiguous(), {p.height, p.width}, /*align_corners=*/false);
  }
  at::Tensor mean = at::tensor(p.mean, at::kDouble).to(at::kFloat).reshape({1, -1, 1, 1});
  at::Tensor std = at::tensor(p.std, at::kDouble).to(at::kFloat).reshape({1, -1, 1, 1});
  return ((x * p.scale - mean) / std).contiguous();
}

}  // namespace graft::data
