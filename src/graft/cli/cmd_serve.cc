// graft serve SRV.onnx — serve a model (usually the server half from `graft split`) over the Open
// Inference Protocol (KServe v2) gRPC API until SIGINT or SIGTERM, then finish what is in flight.
#include <ATen/Parallel.h>
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <memory>

#include "graft/cli/common.h"
#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/core/log.h"
#include "graft/serve/server.h"

namespace graft::cli {
namespace {

struct ServeArgs {
  std::string model, token, token_file;
  serve::ServerOptions o;
  double max_delay_ms = 0, max_message_mb = 64, grace_s = 30;
  int threads = 0;
};

void run(ServeArgs a) {
  a.o.token = bearer_token(a.token, a.token_file);
  a.o.max_delay_us = static_cast<int64_t>(a.max_delay_ms * 1000);
  a.o.max_message_bytes = static_cast<int64_t>(a.max_message_mb * (1 << 20));
  if (a.threads > 0) at::set_num_threads(a.threads);

  // SIGINT/SIGTERM are blocked here, before gRPC starts its threads (which inherit the mask), and
  // taken synchronously below: the shutdown runs on this thread, not in a signal handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  a.o.keras = keras_options(a.model);
  serve::Server server(a.model, a.o);
  const std::string host = a.o.listen.substr(0, a.o.listen.rfind(':'));
  std::printf(
      "graft serve: model '%s' (%s) listening on %s:%d%s%s; max batch %lld, max delay %.3g ms, "
      "queue %lld\n",
      server.model_name().c_str(), a.model.c_str(), host.c_str(), server.port(),
      a.o.tls_cert.empty() ? "" : ", TLS", a.o.token.empty() ? "" : ", bearer token required",
      static_cast<long long>(a.o.max_batch), a.max_delay_ms, static_cast<long long>(a.o.max_queue));
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  log::info(std::string("serve: ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
            ": no new calls; finishing the ones in flight");
  server.shutdown(std::chrono::milliseconds(static_cast<int64_t>(a.grace_s * 1000)));
  const serve::ServerStats s = server.stats();
  std::printf(
      "graft serve: stopped after %lld requests (%lld failed, %lld refused with a full queue), "
      "%lld images in %lld model runs\n",
      static_cast<long long>(s.requests), static_cast<long long>(s.errors),
      static_cast<long long>(s.rejected_full), static_cast<long long>(s.images),
      static_cast<long long>(s.runs));
}

}  // namespace

Command add_serve_command(CLI::App& root) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* app = root.add_subcommand(
      "serve", "Serve a model over the Open Inference Protocol (KServe v2 gRPC)");
  app->add_option("model", args->model, "ONNX model (the server half from graft split)")
      ->required();
  app->add_option("--listen", args->o.listen,
                  "HOST:PORT to listen on (default 127.0.0.1:8001; port 0: any free)");
  app->add_option("--name", args->o.model_name,
                  "Model name clients ask for (default: the file's stem)");
  app->add_option("--token", args->token,
                  "Require 'authorization: Bearer TOKEN' on every call but the health probes");
  app->add_option("--token-file", args->token_file, "Read the token from this file");
  app->add_option("--tls-cert", args->o.tls_cert, "TLS certificate chain (PEM); with --tls-key");
  app->add_option("--tls-key", args->o.tls_key, "TLS private key (PEM)");
  app->add_option("--max-batch", args->o.max_batch, "Most images per model run (default 32)")
      ->check(CLI::PositiveNumber);
  app->add_option(
         "--max-delay-ms", args->max_delay_ms,
         "How long a request may wait for others to batch with (default 0: batch what is queued)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--max-queue", args->o.max_queue,
                  "Most requests waiting; more get RESOURCE_EXHAUSTED (default 128)")
      ->check(CLI::PositiveNumber);
  app->add_option("--max-message-mb", args->max_message_mb,
                  "Largest request accepted, in MiB (default 64)")
      ->check(CLI::PositiveNumber);
  app->add_option("--grace-s", args->grace_s,
                  "On SIGINT/SIGTERM, wait this long for calls in flight (default 30)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--threads", args->threads, "Intra-op threads of the model runs")
      ->check(CLI::PositiveNumber);
  return {app, [args] { run(*args); }};
}

}  // namespace graft::cli
