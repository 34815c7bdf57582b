#include "graft/exec/session.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <list>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

#include "graft/core/error.h"
#include "graft/core/log.h"
#include "graft/exec/onednn/program.h"
#include "graft/exec/passes/passes.h"
#include "graft/ops/kernel.h"

namespace graft::exec {
namespace {

std::string describe_tensor(const at::Tensor& t) {
  std::string s = std::string(c10::toString(t.scalar_type())) + " (";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

std::string describe_value(const ir::Value& v) {
  return ir::dtype_name(v.dtype) + " " + ir::shape_str(v.shape);
}

}  // namespace

struct Session::Impl {
  ir::Graph graph;
  SessionOptions options;
  std::string origin;
  std::vector<ops::Kernel> kernels;
  std::vector<bool> train_node;

  // The oneDNN path: programs by input shapes and requested outputs, newest first.
  bool onednn = false;
  std::mutex mu;
  std::shared_ptr<onednn::WeightCache> weights;  // before programs: their weights live in it
  std::list<std::pair<std::string, std::unique_ptr<onednn::Program>>> programs;
  std::optional<EngineStats> last_stats;
  static constexpr size_t kMaxPrograms = 8;

  std::string prefix() const { return origin.empty() ? "" : origin + ": "; }

  // f(), its graft errors prefixed with the model's origin; other exceptions (a dnnl::error the
  // caller falls back on) pass through unchanged.
  template <typename F>
  auto with_origin(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const Error& e) {
      if (origin.empty()) throw;
      throw e.with_context(origin);
    }
  }

  // Runs the needed nodes one by one on their ATen kernels.
  void interpret(std::unordered_map<std::string, at::Tensor>& env, const std::vector<bool>& needed,
                 const std::set<std::string>& keep, const RunOptions& run_options);
};

std::vector<std::pair<std::string, std::string>> unsupported_ops(const ir::Graph& graph) {
  const auto& registry = ops::Registry::instance();
  std::vector<std::pair<std::string, std::string>> missing;
  std::set<std::string> seen;
  for (const auto& n : graph.nodes) {
    const std::string key = (n.domain.empty() ? "" : n.domain + ".") + n.op_type;
    if (registry.find(n.domain, n.op_type) == nullptr && seen.insert(key).second) {
      missing.emplace_back(key, n.name);
    }
  }
  return missing;
}

Session::Session(ir::Graph graph, SessionOptions options, std::string origin)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.graph = std::move(graph);
  s.options = std::move(options);
  s.origin = std::move(origin);
  if (auto missing = unsupported_ops(s.graph); !missing.empty()) {
    std::string list;
    for (const auto& [op, node] : missing) {
      list += (list.empty() ? "" : ", ") + op + " (first used by node '" + node + "')";
    }
    throw Error(s.prefix() + "graft cannot run " + std::to_string(missing.size()) +
                " op type(s): " + list);
  }
  for (const auto& [name, t] : s.graph.initializers) {
    if (t.is_meta()) {
      throw Error(s.prefix() + "initializer '" + name + "' was loaded without values; load "
                  "the model with weights to run it", ErrorKind::kInternal);
    }
  }
  if (s.options.training) {
    for (const auto& name : s.options.trainable) {
      auto it = s.graph.initializers.find(name);
      if (it == s.graph.initializers.end()) {
        throw Error(s.prefix() + "trainable tensor '" + name + "' is not an initializer");
      }
      if (!it->second.is_floating_point()) {
        throw Error(s.prefix() + "trainable tensor '" + name + "' is not floating point");
      }
      it->second.requires_grad_(true);
    }
  }
  if (s.options.optimize && !s.options.training) {
    with_context(s.prefix() + "graph optimisation", [&] { passes::optimize(s.graph, s.options.keep); });
    s.onednn = s.options.onednn;
    s.weights = onednn::make_weight_cache();
  }
  std::map<std::string, int64_t> opsets;
  for (const auto& o : s.graph.opset_imports) opsets[o.domain == "ai.onnx" ? "" : o.domain] = o.version;
  const auto& registry = ops::Registry::instance();
  for (const auto& n : s.graph.nodes) {
    ops::NodeContext ctx{n, opsets[n.domain], {}, {}};
    for (const auto& in : n.inputs) {
      auto it = s.graph.initializers.find(in);
      ctx.constants.push_back(it == s.graph.initializers.end() ? at::Tensor() : it->second);
      ctx.input_shapes.push_back(in.empty() || !s.graph.has_value(in) ? std::nullopt
                                                                      : s.graph.value(in).shape);
    }
    s.kernels.push_back(with_context(s.prefix() + n.describe(),
                                     [&] { return (*registry.find(n.domain, n.op_type))(ctx); }));
    s.train_node.push_back(s.options.training && s.options.train_nodes.count(n.name) > 0);
  }
}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

const ir::Graph& Session::graph() const { return impl_->graph; }
const std::map<std::string, at::Tensor>& Session::initializers() const {
  return impl_->graph.initializers;
}

std::optional<EngineStats> Session::engine_stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->last_stats;
}

std::vector<at::Tensor> Session::trainable_parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& name : impl_->options.trainable) out.push_back(impl_->graph.initializers.at(name));
  return out;
}

TensorMap Session::run(const TensorMap& inputs, const std::vector<std::string>& requested,
                       const RunOptions& run_options) {
  Impl& s = *impl_;
  const ir::Graph& g = s.graph;
  std::unordered_map<std::string, at::Tensor> env;
  env.reserve(g.values.size());

  for (const auto& [name, t] : inputs) {
    if (std::find(g.inputs.begin(), g.inputs.end(), name) == g.inputs.end()) {
      std::string names;
      for (const auto& i : g.inputs) names += (names.empty() ? "" : ", ") + i;
      throw Error(s.prefix() + "'" + name + "' is not an input of the model (inputs: " + names + ")");
    }
  }
  for (const auto& name : g.inputs) {
    const ir::Value& v = g.value(name);
    auto it = inputs.find(name);
    if (it == inputs.end()) {
      throw Error(s.prefix() + "missing input '" + name + "' (expected " + describe_value(v) + ")");
    }
    const at::Tensor& t = it->second;
    bool ok = v.dtype == ir::kUndefined || ir::dtype_of(t.scalar_type()) == v.dtype;
    if (ok && v.shape) {
      ok = static_cast<int64_t>(v.shape->size()) == t.dim();
      for (size_t d = 0; ok && d < v.shape->size(); ++d) {
        ok = !(*v.shape)[d].known() || (*v.shape)[d].value == t.size(static_cast<int64_t>(d));
      }
    }
    if (!ok) {
      throw Error(s.prefix() + "input '" + name + "': expected " + describe_value(v) + ", got " +
                  describe_tensor(t));
    }
    env[name] = t;
  }

  const std::vector<std::string> wanted = requested.empty() ? g.outputs : requested;
  // Which nodes the wanted values need, walking back from them.
  std::vector<bool> needed(g.nodes.size(), false);
  std::vector<int> stack;
  for (const auto& name : wanted) {
    if (!g.has_value(name)) {
      throw Error(s.prefix() + "no tensor named '" + name + "' in the model" +
                  (s.options.optimize ? " (graph optimisation may have fused it away: list it in SessionOptions::keep)" : ""));
    }
    if (g.value(name).producer >= 0) stack.push_back(g.value(name).producer);
  }
  while (!stack.empty()) {
    const int i = stack.back();
    stack.pop_back();
    if (needed[static_cast<size_t>(i)]) continue;
    needed[static_cast<size_t>(i)] = true;
    for (const auto& in : g.nodes[static_cast<size_t>(i)].inputs) {
      if (!in.empty() && g.value(in).producer >= 0) stack.push_back(g.value(in).producer);
    }
  }
  const std::set<std::string> keep(wanted.begin(), wanted.end());
  TensorMap result;
  for (const auto& name : wanted) {
    auto init = g.initializers.find(name);
    if (init != g.initializers.end()) result[name] = init->second;
  }

  if (s.onednn && !run_options.check_finite) {
    std::string key;
    for (const auto& name : g.inputs) key += c10::str(env.at(name).sizes(), ";");
    for (const auto& name : wanted) key += name + ",";
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = std::find_if(s.programs.begin(), s.programs.end(),
                           [&](const auto& p) { return p.first == key; });
    std::map<std::string, at::Tensor> outs;
    if (it == s.programs.end()) {
      // Compiling runs the program once: that run answers this call.
      std::vector<std::string> computed;
      for (const auto& name : wanted) {
        if (!g.initializers.count(name)) computed.push_back(name);
      }
      const std::map<std::string, at::Tensor> given(inputs.begin(), inputs.end());
      std::unique_ptr<onednn::Program> program;
      try {
        program = s.with_origin([&] {
          c10::InferenceMode guard;
          return std::make_unique<onednn::Program>(g, s.kernels, needed, computed, given, *s.weights);
        });
      } catch (const dnnl::error& e) {
        // oneDNN refused something the checks let through: stay on the reference kernels.
        log::warn(s.prefix() + "oneDNN path unavailable (" + e.what() +
                  "); running on the reference kernels");
        s.onednn = false;
        program.reset();
      }
      if (program) {
        outs = program->take_first_result();
        s.programs.emplace_front(key, std::move(program));
        if (s.programs.size() > Impl::kMaxPrograms) s.programs.pop_back();
      }
    } else {
      if (it != s.programs.begin()) s.programs.splice(s.programs.begin(), s.programs, it);
      onednn::Program& program = *s.programs.front().second;
      outs = s.with_origin([&] {
        c10::InferenceMode guard;
        return program.run(std::map<std::string, at::Tensor>(inputs.begin(), inputs.end()),
                           run_options.profile);
      });
    }
    if (s.onednn) {
      const onednn::ProgramStats& ps = s.programs.front().second->stats();
      s.last_stats = EngineStats{ps.onednn_nodes, ps.reference_nodes, ps.reorders, ps.arena_bytes,
                                 ps.reference_ops, ps.reference_kernel_ops, ps.folded_nodes};
      for (auto& [name, t] : outs) result[name] = std::move(t);
      return result;
    }
  }

  s.interpret(env, needed, keep, run_options);
  for (const auto& name : wanted) {
    if (result.count(name)) continue;
    auto it = env.find(name);
    if (it == env.end()) {
      throw Error(s.prefix() + "'" + name + "' was not computed", ErrorKind::kInternal);
    }
    result[name] = it->second;
  }
  return result;
}

void Session::Impl::interpret(std::unordered_map<std::string, at::Tensor>& env,
                              const std::vector<bool>& needed, const std::set<std::string>& keep,
                              const RunOptions& run_options) {
  Impl& s = *this;
  const ir::Graph& g = s.graph;
  // Last needed consumer of every value, so it can be freed right after.
  std::unordered_map<std::string, size_t> last_use;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!needed[i]) continue;
    for (const auto& in : g.nodes[i].inputs) last_use[in] = i;
  }

  std::unique_ptr<c10::InferenceMode> guard;
  if (!s.options.training) guard = std::make_unique<c10::InferenceMode>();

  std::vector<at::Tensor> args;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!needed[i]) continue;
    const ir::Node& n = g.nodes[i];
    args.clear();
    for (const auto& in : n.inputs) {
      if (in.empty()) {
        args.emplace_back();
        continue;
      }
      auto init = g.initializers.find(in);
      if (init != g.initializers.end()) {
        args.push_back(init->second);
        continue;
      }
      auto it = env.find(in);
      if (it == env.end()) {
        throw Error(s.prefix() + n.describe() + ": input '" + in + "' was not computed",
                    ErrorKind::kInternal);
      }
      args.push_back(it->second);
    }
    ops::RunContext ctx;
    ctx.training = s.train_node[i];
    if (ctx.training && s.options.replica_sum) ctx.replica_sum = &s.options.replica_sum;
    std::vector<at::Tensor> outs;
    const auto t0 = run_options.profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    try {
      outs = s.kernels[i](args, ctx);
    } catch (const Error& e) {
      throw e.with_context(s.prefix() + n.describe());
    } catch (const c10::Error& e) {
      throw Error(s.prefix() + n.describe() + ": " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw Error(s.prefix() + n.describe() + ": " + e.what());
    }
    if (run_options.profile) {
      run_options.profile->push_back(
          {n.name.empty() ? n.outputs.front() : n.name, (n.domain.empty() ? "" : n.domain + ".") + n.op_type,
           "aten", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()});
    }
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      if (k >= outs.size()) {
        if (g.value(n.outputs[k]).consumers.empty() && !keep.count(n.outputs[k])) continue;
        throw Error(s.prefix() + n.describe() + ": graft does not compute its output #" +
                    std::to_string(k) + " ('" + n.outputs[k] + "')");
      }
      if (run_options.check_finite && outs[k].is_floating_point() &&
          !at::isfinite(outs[k]).all().item<bool>()) {
        const bool nan = at::isnan(outs[k]).any().item<bool>();
        throw Error(s.prefix() + n.describe() + " produced " + (nan ? "NaN" : "Inf") +
                    " in '" + n.outputs[k] + "' (the first node to do so)");
      }
      env[n.outputs[k]] = std::move(outs[k]);
    }
    if (s.options.training) continue;  // autograd keeps what backward needs anyway
    for (const auto& in : n.inputs) {
      auto lu = last_use.find(in);
      if (lu != last_use.end() && lu->second == i && !keep.count(in)) env.erase(in);
    }
  }

}

}  // namespace graft::exec
