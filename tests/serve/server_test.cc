// graft serve on loopback: each test starts its own server on a free port. The model is the
// bundled (trained) server model cut at mixed_6a: the device side runs its head here, the
// server its tail, as graft split would cut a hybrid.
#include "graft/serve/server.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "../common/errors.h"
#include "graft/cut/cut.h"
#include "graft/data/dataset.h"
#include "graft/exec/session.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"
#include "graft/serve/client.h"
#include "graft/serve/inference.grpc.pb.h"

namespace graft::serve {
namespace {

namespace fs = std::filesystem;
namespace pb = ::inference;

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/graft_serve_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    ir::Graph g = ir::load(GRAFT_MODELS "/server.onnx");
    ir::infer_shapes(g);
    const std::vector<std::string> cut = cut::resolve_cut(g, "mixed_6a");
    ASSERT_EQ(cut.size(), 1u);
    tensor_ = new std::string(cut[0]);
    ir::Graph tail = cut::tail(g, cut);
    ir::save(tail, dir_ + "/srv.onnx");
    exec::SessionOptions so;
    so.optimize = true;
    so.keep = {cut[0]};
    head_ = new exec::Session(cut::head(g, cut), so);
    local_ = new exec::Session(std::move(tail), so);
    test_ = new data::Dataset(data::open_dataset("fashion-mnist", "test"));
    pre_ = new data::Preprocess(data::Preprocess::from_metadata(g, "server.onnx"));
  }
  static void TearDownTestSuite() {
    delete head_;
    delete local_;
    delete test_;
    delete pre_;
    delete tensor_;
    fs::remove_all(dir_);
  }

  static std::unique_ptr<Server> start(ServerOptions o = {}) {
    o.listen = "127.0.0.1:0";
    o.model_name = "srv";
    return std::make_unique<Server>(dir_ + "/srv.onnx", o);
  }
  static ClientOptions client_options(const Server& s) {
    ClientOptions c;
    c.target = "127.0.0.1:" + std::to_string(s.port());
    return c;
  }
  // The split tensor for test images [start, start + n).
  static at::Tensor features(int64_t start, int64_t n) {
    c10::InferenceMode guard;
    const at::Tensor x = data::preprocess_batch(test_->images.narrow(0, start, n), *pre_);
    return head_->run({{head_->graph().inputs[0], x}}, {*tensor_}).at(*tensor_).contiguous();
  }
  static at::Tensor local(const at::Tensor& f) {
    c10::InferenceMode guard;
    return local_->run({{local_->graph().inputs[0], f}}).begin()->second;
  }
  static at::Tensor remote(Client& c, const at::Tensor& f, Codec codec = Codec::kFp32,
                           bool zstd = false) {
    InferResult r = c.infer("srv", *tensor_, f.data_ptr<float>(), f.sizes().vec(), codec, zstd);
    EXPECT_EQ(r.outputs.size(), 1u);
    return at::from_blob(r.outputs[0].data.data(), r.outputs[0].shape, at::kFloat).clone();
  }
  // A raw request for the split tensor, for tests that break it on purpose.
  static pb::ModelInferRequest request(const at::Tensor& f) {
    pb::ModelInferRequest req;
    req.set_model_name("srv");
    auto* in = req.add_inputs();
    in->set_name(*tensor_);
    in->set_datatype("FP32");
    for (int64_t d : f.sizes()) in->add_shape(d);
    req.add_raw_input_contents(std::string(static_cast<const char*>(f.data_ptr()), f.numel() * 4));
    return req;
  }
  static std::unique_ptr<pb::GRPCInferenceService::Stub> stub(const Server& s) {
    return pb::GRPCInferenceService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(s.port()), grpc::InsecureChannelCredentials()));
  }
  static grpc::Status call(pb::GRPCInferenceService::Stub& stub, const pb::ModelInferRequest& req,
                           const std::string& token = "") {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    pb::ModelInferResponse resp;
    return stub.ModelInfer(&ctx, req, &resp);
  }
  static void wait_queued(const Server& s, int64_t n) {
    for (int i = 0; i < 1000 && s.stats().queued < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(s.stats().queued, n);
  }

  static std::string dir_;
  static std::string* tensor_;
  static exec::Session* head_;
  static exec::Session* local_;
  static data::Dataset* test_;
  static data::Preprocess* pre_;
};
std::string ServeTest::dir_;
std::string* ServeTest::tensor_;
exec::Session* ServeTest::head_;
exec::Session* ServeTest::local_;
data::Dataset* ServeTest::test_;
data::Preprocess* ServeTest::pre_;

TEST_F(ServeTest, HealthAndMetadata) {
  auto server = start();
  Client c(client_options(*server));
  EXPECT_TRUE(c.live());
  const ServerInfo info = c.server_metadata();
  EXPECT_EQ(info.name, "graft");
  EXPECT_TRUE(info.has_extension("graft_codecs"));
  const ModelInfo m = c.model_metadata("srv");
  EXPECT_EQ(m.name, "srv");
  ASSERT_EQ(m.inputs.size(), 1u);
  EXPECT_EQ(m.inputs[0].name, *tensor_);
  EXPECT_EQ(m.inputs[0].datatype, "FP32");
  std::vector<int64_t> want = features(0, 1).sizes().vec();
  want[0] = -1;
  EXPECT_EQ(m.inputs[0].shape, want);
  ASSERT_EQ(m.outputs.size(), 1u);
  EXPECT_EQ(m.outputs[0].shape, (std::vector<int64_t>{-1, 10}));
  EXPECT_TRUE(m.properties.count("graft.labels"));
  EXPECT_NE(testing::error_message([&] {
              c.model_metadata("nope");
            }).find("NOT_FOUND: unknown model 'nope'"),
            std::string::npos);
}

TEST_F(ServeTest, RemoteEqualsLocal) {
  auto server = start();
  Client c(client_options(*server));
  const at::Tensor f = features(0, 8);
  const at::Tensor want = local(f);
  // fp32: the same bytes in, the same kernels at the same batch: exactly equal.
  EXPECT_TRUE(at::equal(remote(c, f), want));
  EXPECT_TRUE(at::equal(remote(c, f, Codec::kFp32, true), want));
  // fp16 and int8 (stated tolerances): the largest logit difference relative to the largest logit.
  const double scale = want.abs().max().item<double>();
  for (bool zstd : {false, true}) {
    const double fp16 =
        (remote(c, f, Codec::kFp16, zstd) - want).abs().max().item<double>() / scale;
    const double int8 =
        (remote(c, f, Codec::kInt8, zstd) - want).abs().max().item<double>() / scale;
    EXPECT_LT(fp16, 5e-3) << "fp16";
    EXPECT_LT(int8, 5e-2) << "int8";
  }
}

TEST_F(ServeTest, Int8AccuracyWithinHalfAPointOfFp32) {
  ServerOptions o;
  o.max_batch = 500;
  auto server = start(o);
  Client c(client_options(*server));
  int64_t right32 = 0, right8 = 0;
  const int64_t n = test_->size(), batch = 500;
  for (int64_t s = 0; s < n; s += batch) {
    const at::Tensor f = features(s, batch);
    const at::Tensor labels = test_->labels.narrow(0, s, batch);
    right32 += remote(c, f).argmax(1).eq(labels).sum().item<int64_t>();
    right8 += remote(c, f, Codec::kInt8).argmax(1).eq(labels).sum().item<int64_t>();
  }
  const double top1_32 = static_cast<double>(right32) / n, top1_8 = static_cast<double>(right8) / n;
  std::printf("Fashion-MNIST test top-1 through the server: fp32 %.2f%%, int8 %.2f%%\n",
              100 * top1_32, 100 * top1_8);
  EXPECT_GT(top1_32, 0.9);
  EXPECT_LE(std::abs(top1_32 - top1_8), 0.005);
}

TEST_F(ServeTest, ThirtyTwoConcurrentClientsOfAHundredRequests) {
  auto server = start();
  const at::Tensor f = features(0, 32);
  const at::Tensor want = local(f);
  std::atomic<int> failures{0}, wrong{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 32; ++t) {
    clients.emplace_back([&, t] {
      Client c(client_options(*server));  // each client its own channel
      const at::Tensor mine = f.narrow(0, t, 1).contiguous();
      for (int r = 0; r < 100; ++r) {
        try {
          const at::Tensor y = remote(c, mine);
          // Batched with other clients' rows: equal to the local result up to summation order.
          if (!at::allclose(y, want.narrow(0, t, 1), 1e-4, 1e-5)) wrong++;
        } catch (const Error&) {
          failures++;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  const ServerStats s = server->stats();
  EXPECT_EQ(s.requests, 3200);
  EXPECT_EQ(s.errors, 0);
  EXPECT_EQ(s.images, 3200);
  std::printf("3200 requests ran in %lld model runs (dynamic batching)\n",
              static_cast<long long>(s.runs));
}

TEST_F(ServeTest, MalformedRequestsGetTheirStatusAndTheServerKeepsServing) {
  ServerOptions o;
  o.max_message_bytes = 1 << 20;
  auto server = start(o);
  auto s = stub(*server);
  const at::Tensor f = features(0, 2);
  const pb::ModelInferRequest good = request(f);
  ASSERT_TRUE(call(*s, good).ok());

  auto expect = [&](const pb::ModelInferRequest& req, grpc::StatusCode code,
                    const std::string& says) {
    const grpc::Status st = call(*s, req);
    EXPECT_EQ(st.error_code(), code) << st.error_message();
    EXPECT_NE(st.error_message().find(says), std::string::npos) << st.error_message();
    EXPECT_TRUE(call(*s, good).ok()) << "the server stopped serving after: " << says;
  };
  pb::ModelInferRequest r = good;
  r.mutable_inputs(0)->set_datatype("INT64");
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "datatype 'INT64' is not accepted");
  const std::string c = std::to_string(f.size(1)), h = std::to_string(f.size(2)),
                    w = std::to_string(f.size(3));
  r = good;
  r.mutable_inputs(0)->set_shape(0, 3);  // shape says 3 images, the bytes hold 2
  expect(r, grpc::StatusCode::INVALID_ARGUMENT,
         "but shape [3, " + c + ", " + h + ", " + w + "] of FP32 needs");
  r = good;
  r.mutable_inputs(0)->set_shape(0, 0);  // a zero-sized batch
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "dimension 0 is");
  r = good;
  r.mutable_inputs(0)->set_shape(0, -2);
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "dimension 0 is");
  r = good;
  r.mutable_inputs(0)->set_shape(2, 0);
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "dimension 2 is");
  r = good;
  r.mutable_inputs(0)->set_shape(0, int64_t{1} << 62);  // elements overflow int64
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "--max-batch");
  r = good;
  r.mutable_inputs(0)->set_shape(1, f.size(1) + 1);
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "dimension 1 is " + c);
  r = good;
  r.mutable_inputs(0)->set_name("x");
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "has no input 'x'");
  r = good;
  r.set_model_name("resnet");
  expect(r, grpc::StatusCode::NOT_FOUND, "unknown model 'resnet'");
  r = good;
  r.set_model_version("7");
  expect(r, grpc::StatusCode::NOT_FOUND, "no version '7'");
  r = good;
  r.add_outputs()->set_name("logits");
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "has no output 'logits'");
  r = good;
  r.mutable_inputs(0)->set_datatype("INT8");
  expect(r, grpc::StatusCode::INVALID_ARGUMENT,
         "of INT8 needs");  // 4 bytes an element are not INT8
  r = good;
  (*r.mutable_inputs(0)->mutable_parameters())["graft.zstd"].set_bool_param(true);
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "not a zstd frame");
  r = good;  // raw bytes and typed contents together: the protocol forbids it
  r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.f);
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "not both");
  r = good;
  r.mutable_inputs(0)->mutable_contents()->add_bytes_contents("x");
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "not both");
  r = good;  // typed FP32 contents alone are accepted
  r.clear_raw_input_contents();
  {
    const at::Tensor flat = f.contiguous();
    for (int64_t i = 0; i < flat.numel(); ++i) r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(flat.data_ptr<float>()[i]);
  }
  EXPECT_TRUE(call(*s, r).ok());
  r = request(features(0, 256));  // larger than the 1 MiB limit
  ASSERT_GT(r.ByteSizeLong(), 1u << 20);
  expect(r, grpc::StatusCode::RESOURCE_EXHAUSTED, "");
}

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer keeps freed memory in quarantine (256 MB by default) to catch uses after
// free; emptying it first makes resident memory mean live memory here too.
extern "C" void __sanitizer_purge_allocator();
#endif

// Resident memory of this process, in MiB.
double rss_mib() {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_purge_allocator();
#endif
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1 << 20);
}

// 1,000 calls at once against a queue of 4: each is answered (OK, or RESOURCE_EXHAUSTED when the
// queue is full), a second wave of 1,000 leaves memory where the first did, and the next
// request is served.
TEST_F(ServeTest, AThousandConcurrentCallsAgainstASmallQueue) {
  ServerOptions o;
  o.max_queue = 4;
  o.max_batch = 64;
  auto server = start(o);
  auto s = stub(*server);
  const at::Tensor f = features(0, 2);
  const pb::ModelInferRequest req = request(f);
  const at::Tensor want = local(f);
  double after_first = 0;
  for (int wave = 0; wave < 2; ++wave) {
    constexpr int kCalls = 1000;
    grpc::CompletionQueue cq;
    std::vector<grpc::ClientContext> ctx(kCalls);
    std::vector<pb::ModelInferResponse> resp(kCalls);
    std::vector<grpc::Status> status(kCalls);
    std::vector<std::unique_ptr<grpc::ClientAsyncResponseReader<pb::ModelInferResponse>>> calls;
    for (int i = 0; i < kCalls; ++i) {
      ctx[i].set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
      calls.push_back(s->AsyncModelInfer(&ctx[i], req, &cq));
      calls.back()->Finish(&resp[i], &status[i], reinterpret_cast<void*>(static_cast<intptr_t>(i)));
    }
    int ok = 0, full = 0;
    for (int done = 0; done < kCalls; ++done) {
      void* tag = nullptr;
      bool fine = false;
      ASSERT_TRUE(cq.Next(&tag, &fine));
      const int i = static_cast<int>(reinterpret_cast<intptr_t>(tag));
      if (status[i].ok()) {
        ++ok;
        ASSERT_EQ(resp[i].raw_output_contents_size(), 1);
        const std::string& bytes = resp[i].raw_output_contents(0);
        ASSERT_EQ(bytes.size(), static_cast<size_t>(want.numel()) * sizeof(float));
        const at::Tensor got = at::from_blob(const_cast<char*>(bytes.data()), want.sizes(), at::kFloat);
        EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-5)) << "call " << i;
      } else {
        EXPECT_EQ(status[i].error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status[i].error_message();
        ++full;
      }
    }
    cq.Shutdown();
    EXPECT_GT(ok, 0);
    EXPECT_EQ(ok + full, kCalls);
    if (wave == 0) {
      after_first = rss_mib();
    } else {
      EXPECT_LT(rss_mib() - after_first, 64.0) << "memory grew from one wave of 1,000 calls to the next";
    }
  }
  EXPECT_TRUE(call(*s, req).ok());
}

// Calls past their deadline, clients that vanish mid-call, bytes that are no protobuf, 64
// connections that never finish their HTTP/2 preface, and 800 calls with a wrong token: after
// each, good requests are served.
TEST_F(ServeTest, DeadlinesVanishingClientsJunkStalledSocketsAndBadTokens) {
  ServerOptions o;
  o.token = "s3cret";
  o.max_batch = 64;
  auto server = start(o);
  auto s = stub(*server);
  const pb::ModelInferRequest good = request(features(0, 1));
  const pb::ModelInferRequest heavy = request(features(0, 64));
  const auto good_call = [&] { return call(*s, good, "s3cret"); };
  ASSERT_TRUE(good_call().ok());

  // Deadlines that expire while the request waits in the batcher (a lone request waits 3 s for
  // company there), on a server of its own.
  {
    ServerOptions slow;
    slow.max_delay_us = 3'000'000;
    auto waiting = start(slow);
    auto ws = stub(*waiting);
    for (int i = 0; i < 5; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100 + 50 * i));
      pb::ModelInferResponse resp;
      EXPECT_EQ(ws->ModelInfer(&ctx, good, &resp).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    }
    EXPECT_TRUE(call(*ws, good).ok()) << "after deadlines";
  }

  // Clients that start a heavy call and disappear (context, channel and queue gone).
  for (int i = 0; i < 10; ++i) {
    auto gone = stub(*server);
    grpc::CompletionQueue cq;
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer s3cret");
    pb::ModelInferResponse resp;
    grpc::Status status;
    auto rpc = gone->AsyncModelInfer(&ctx, heavy, &cq);
    rpc->Finish(&resp, &status, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(i * 3));
    ctx.TryCancel();
    void* tag;
    bool fine;
    cq.Next(&tag, &fine);
    cq.Shutdown();
  }
  EXPECT_TRUE(good_call().ok()) << "after vanished clients";

  // Bytes that do not parse as a ModelInferRequest.
  {
    grpc::GenericStub generic(grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()),
                                                  grpc::InsecureChannelCredentials()));
    for (const std::string& junk : {std::string("\xff\xff\xff\xff", 4), std::string("\x0a\x80\x80\x80\x80\x10", 6),
                                   std::string(4096, '\x12')}) {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer s3cret");
      grpc::CompletionQueue cq;
      grpc::Slice slice(junk);
      grpc::ByteBuffer in(&slice, 1), out;
      grpc::Status status;
      auto rpc = generic.PrepareUnaryCall(&ctx, "/inference.GRPCInferenceService/ModelInfer", in, &cq);
      rpc->StartCall();
      rpc->Finish(&out, &status, nullptr);
      void* tag;
      bool fine;
      ASSERT_TRUE(cq.Next(&tag, &fine));
      EXPECT_FALSE(status.ok()) << "junk accepted";
      cq.Shutdown();
    }
  }
  EXPECT_TRUE(good_call().ok()) << "after junk";

  // Connections that never finish HTTP/2's preface: the others are not held up by them.
  std::vector<int> stalled;
  for (int i = 0; i < 64; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const char partial[] = "PRI * HTTP/2.0\r\n";
    ASSERT_GT(::send(fd, partial, sizeof partial - 1, 0), 0);
    stalled.push_back(fd);
  }
  for (int i = 0; i < 16; ++i) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer s3cret");
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    pb::ModelInferResponse resp;
    EXPECT_TRUE(s->ModelInfer(&ctx, good, &resp).ok()) << "beside stalled connections";
  }
  for (int fd : stalled) ::close(fd);

  // Wrong tokens at a high rate.
  std::atomic<int> refused{0};
  std::vector<std::thread> guessers;
  for (int t = 0; t < 8; ++t) {
    guessers.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        if (call(*s, good, "guess" + std::to_string(t * 100 + i)).error_code() == grpc::StatusCode::UNAUTHENTICATED) {
          refused++;
        }
      }
    });
  }
  for (auto& g : guessers) g.join();
  EXPECT_EQ(refused.load(), 800);
  EXPECT_TRUE(good_call().ok()) << "after wrong tokens";
}

TEST_F(ServeTest, CancelledCallIsDroppedAndTheServerKeepsServing) {
  ServerOptions o;
  o.max_delay_us = 5'000'000;  // a lone request waits 5 s for company: time to cancel it
  auto server = start(o);
  auto s = stub(*server);
  const pb::ModelInferRequest req = request(features(0, 1));
  grpc::ClientContext ctx;
  pb::ModelInferResponse resp;
  grpc::Status status;
  std::thread caller([&] { status = s->ModelInfer(&ctx, req, &resp); });
  wait_queued(*server, 1);
  ctx.TryCancel();
  caller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  // The next request still gets an answer (after its own batching delay).
  grpc::ClientContext ctx2;
  pb::ModelInferResponse resp2;
  EXPECT_TRUE(s->ModelInfer(&ctx2, req, &resp2).ok());
}

TEST_F(ServeTest, FullQueueAnswersResourceExhausted) {
  ServerOptions o;
  o.max_queue = 2;
  o.max_batch = 64;
  o.max_delay_us = 1'500'000;
  auto server = start(o);
  auto s = stub(*server);
  const pb::ModelInferRequest req = request(features(0, 1));
  std::vector<std::thread> waiting;
  std::atomic<int> ok{0};
  for (int i = 0; i < 2; ++i) {
    waiting.emplace_back([&] {
      if (call(*s, req).ok()) ok++;
    });
  }
  wait_queued(*server, 2);
  const grpc::Status st = call(*s, req);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("queue is full"), std::string::npos);
  for (auto& t : waiting) t.join();
  EXPECT_EQ(ok.load(), 2);  // the queued ones were served, as one batch
  EXPECT_EQ(server->stats().rejected_full, 1);
}

TEST_F(ServeTest, TokenIsRequiredButNotForHealthProbes) {
  ServerOptions o;
  o.token = "s3cret";
  auto server = start(o);
  auto s = stub(*server);
  const pb::ModelInferRequest req = request(features(0, 1));
  EXPECT_EQ(call(*s, req).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call(*s, req, "guess").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(call(*s, req, "s3cret").ok());
  ClientOptions co = client_options(*server);
  Client anonymous(co);
  EXPECT_TRUE(anonymous.live());
  EXPECT_NE(
      testing::error_message([&] { anonymous.model_metadata("srv"); }).find("UNAUTHENTICATED"),
      std::string::npos);
  co.token = "s3cret";
  Client c(co);
  EXPECT_EQ(c.model_metadata("srv").name, "srv");
}

TEST_F(ServeTest, ShutdownFinishesCallsInFlight) {
  ServerOptions o;
  o.max_delay_us = 1'000'000;
  auto server = start(o);
  Client c(client_options(*server));
  const at::Tensor f = features(0, 1);
  const at::Tensor want = local(f);
  at::Tensor got;
  std::string error;
  std::thread caller([&] {
    try {
      got = remote(c, f);
    } catch (const Error& e) {
      error = e.what();
    }
  });
  wait_queued(*server, 1);
  server->shutdown(std::chrono::seconds(10));
  caller.join();
  EXPECT_EQ(error, "");
  ASSERT_TRUE(got.defined());
  EXPECT_TRUE(at::equal(got, want));
  // Gone afterwards: a new call fails (UNAVAILABLE), it does not hang.
  ClientOptions co = client_options(*server);
  co.timeout_s = 5;
  Client late(co);
  EXPECT_NE(testing::error_message([&] { late.live(); }).find("UNAVAILABLE"), std::string::npos);
}

TEST_F(ServeTest, TlsWithASelfSignedCertificate) {
  const std::string cert = dir_ + "/cert.pem", key = dir_ + "/key.pem";
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  ServerOptions o;
  o.tls_cert = cert;
  o.tls_key = key;
  auto server = start(o);
  ClientOptions co = client_options(*server);
  co.tls_ca = cert;
  co.tls_server_name = "localhost";
  Client c(co);
  const at::Tensor f = features(0, 2);
  EXPECT_TRUE(at::equal(remote(c, f), local(f)));
  ClientOptions plain = client_options(*server);  // a client without TLS gets nowhere
  plain.timeout_s = 5;
  Client p(plain);
  EXPECT_NE(testing::error_message([&] { p.live(); }), "");
}

TEST_F(ServeTest, BadServerOptionsAreNamed) {
  ServerOptions o;
  o.tls_cert = "c.pem";
  EXPECT_NE(testing::error_message([&] { start(o); }).find("both --tls-cert and --tls-key"),
            std::string::npos);
  o = {};
  o.max_batch = 0;
  EXPECT_NE(testing::error_message([&] { start(o); }).find("--max-batch"), std::string::npos);
  EXPECT_NE(testing::error_message([&] {
              Server("/nonexistent/srv.onnx", {});
            }).find("/nonexistent/srv.onnx"),
            std::string::npos);
  // The port is taken: the second server says so.
  auto first = start();
  ServerOptions same;
  same.listen = "127.0.0.1:" + std::to_string(first->port());
  EXPECT_NE(testing::error_message([&] { Server(dir_ + "/srv.onnx", same); }).find("cannot listen"),
            std::string::npos);
}

}  // namespace
}  // namespace graft::serve
