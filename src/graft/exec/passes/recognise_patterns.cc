// Decomposed functions exporters write op by op, recognised and replaced by one node each:
//   x * Sigmoid(x)                                   -> graft.Silu(x)
//   x * HardSigmoid(x; alpha 1/6, beta 1/2)          -> HardSwish(x)
//   x * 0.5 * (1 + Erf(x / sqrt(2)))  (any grouping) -> graft.Gelu(x)
//   0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3)))  -> graft.Gelu(x; approximate "tanh")
//   (x - m) / Sqrt(Mean((x - m)^2) + eps) [* g] [+ b], m = Mean(x), means over the last axis
//                                                    -> LayerNormalization(x, g, b; axis -1)
//   the same with means over axis 1 of NCHW (a channels-first LayerNorm)
//                          -> Transpose to NHWC, LayerNormalization(axis -1), Transpose back
//   MatMul(x, W) [+ b], W a 2-D constant, b a constant row -> graft.FusedMatMul(x, W, b)
//   Transpose(Transpose(x)) composing to the identity      -> x
// Every intermediate must be read only inside its pattern, and none may be protected.
#include <ATen/ATen.h>

#include <cmath>
#include <functional>
#include <optional>

#include "graft/exec/passes/passes.h"
#include "graft/exec/passes/rewrite.h"

namespace graft::exec::passes {
namespace {

class Matcher {
 public:
  Matcher(ir::Graph& g, const std::set<std::string>& protect) : g_(g), protect_(protect), dead_(g.nodes.size()) {}

  // The node producing `value` if it has op type `op` (default domain), is not yet consumed by
  // another rewrite, and (unless `shared_ok`) its output is read only by one node.
  const ir::Node* producer(const std::string& value, const char* op, bool shared_ok = false) const {
    if (value.empty() || !g_.has_value(value) || protect_.count(value)) return nullptr;
    const int p = g_.value(value).producer;
    if (p < 0 || dead_[static_cast<size_t>(p)]) return nullptr;
    const ir::Node& n = g_.nodes[static_cast<size_t>(p)];
    if (!n.domain.empty() || n.op_type != op || n.outputs.size() != 1) return nullptr;
    if (!shared_ok && sole_consumer(g_, value) < 0) return nullptr;
    return &n;
  }

  // A scalar float constant's value.
  std::optional<double> scalar(const std::string& name) const {
    const at::Tensor* c = constant(g_, name);
    if (c == nullptr || c->numel() != 1 || !c->is_floating_point()) return std::nullopt;
    return c->to(at::kDouble).item<double>();
  }

  // For a binary node `n` with one operand a scalar constant near `want`: the other operand.
  std::optional<std::string> other_than_scalar(const ir::Node& n, double want) const {
    if (n.inputs.size() != 2) return std::nullopt;
    for (int k = 0; k < 2; ++k) {
      const auto v = scalar(n.inputs[static_cast<size_t>(k)]);
      if (v && std::abs(*v - want) <= 1e-4 * std::abs(want)) return n.inputs[static_cast<size_t>(1 - k)];
    }
    return std::nullopt;
  }

  // The one live node reading `value` when it has op type `op` (default domain) and `value` is
  // not protected: with the operand beside `value` (binary ops) in `*other`.
  const ir::Node* reader(const std::string& value, const char* op, std::string* other) const {
    const int r = sole_consumer(g_, value);
    if (r < 0 || protect_.count(value) || dead_[static_cast<size_t>(r)]) return nullptr;
    const ir::Node& n = g_.nodes[static_cast<size_t>(r)];
    if (!n.domain.empty() || n.op_type != op || n.inputs.size() != 2) return nullptr;
    *other = n.inputs[0] == value ? n.inputs[1] : n.inputs[0];
    return &n;
  }

  void kill(const ir::Node* n) { dead_[static_cast<size_t>(n - g_.nodes.data())] = true; }
  bool dead(size_t i) const { return dead_[i]; }

  // Turns node `i` into `op` (graft's domain when `graft`) reading `inputs`.
  void become(size_t i, bool graft, const std::string& op, std::vector<std::string> inputs) {
    ir::Node& n = g_.nodes[i];
    if (graft) import_graft_domain(g_);
    n.domain = graft ? kDomain : "";
    n.op_type = op;
    n.inputs = std::move(inputs);
    n.attributes = {};
    ++rewrites_;
  }

  void count() { ++rewrites_; }

  int finish() {
    if (rewrites_ > 0) erase_nodes(g_, dead_);
    return rewrites_;
  }

  ir::Graph& g_;
  const std::set<std::string>& protect_;

 private:
  std::vector<bool> dead_;
  int rewrites_ = 0;
};

bool is(const ir::Node& n, const char* op) { return n.domain.empty() && n.op_type == op; }

// x * f(x) where f is `gate` (sole reader: this Mul) accepted by `accept`: x, and f's node.
std::optional<std::pair<std::string, const ir::Node*>> gated(const Matcher& m, const ir::Node& mul, const char* gate,
                                                             const std::function<bool(const ir::Node&)>& accept) {
  if (!is(mul, "Mul") || mul.inputs.size() != 2) return std::nullopt;
  for (int k = 0; k < 2; ++k) {
    const ir::Node* f = m.producer(mul.inputs[static_cast<size_t>(k)], gate);
    const std::string& x = mul.inputs[static_cast<size_t>(1 - k)];
    if (f != nullptr && !f->inputs.empty() && f->inputs[0] == x && accept(*f)) return std::make_pair(x, f);
  }
  return std::nullopt;
}

bool silu(Matcher& m, size_t i) {
  const auto hit = gated(m, m.g_.nodes[i], "Sigmoid", [](const ir::Node&) { return true; });
  if (!hit) return false;
  m.kill(hit->second);
  m.become(i, true, "Silu", {hit->first});
  return true;
}

bool hard_swish(Matcher& m, size_t i) {
  const auto hit = gated(m, m.g_.nodes[i], "HardSigmoid", [](const ir::Node& h) {
    return std::abs(h.attributes.get_float("alpha", 0.2f) - 1.f / 6.f) < 1e-6f &&
           std::abs(h.attributes.get_float("beta", 0.5f) - 0.5f) < 1e-6f;
  });
  if (!hit) return false;
  m.kill(hit->second);
  m.become(i, false, "HardSwish", {hit->first});
  return true;
}

// Final Mul `i` of x * 0.5 * (1 + g) where g = `inner`(x): x and the nodes to remove, or nullopt.
// Groupings: (x * (1 + g)) * 0.5, (x * 0.5) * (1 + g), (0.5 * (1 + g)) * x.
std::optional<std::pair<std::string, std::vector<const ir::Node*>>> half_x_one_plus(
    const Matcher& m, const ir::Node& last,
    const std::function<std::optional<std::pair<std::string, std::vector<const ir::Node*>>>(const std::string&)>& one_plus) {
  if (!is(last, "Mul") || last.inputs.size() != 2) return std::nullopt;
  // (x * (1 + g)) * 0.5
  if (auto inner = m.other_than_scalar(last, 0.5)) {
    if (const ir::Node* mul = m.producer(*inner, "Mul"); mul != nullptr && mul->inputs.size() == 2) {
      for (int k = 0; k < 2; ++k) {
        auto rest = one_plus(mul->inputs[static_cast<size_t>(k)]);
        if (rest && rest->first == mul->inputs[static_cast<size_t>(1 - k)]) {
          rest->second.push_back(mul);
          return rest;
        }
      }
    }
  }
  for (int k = 0; k < 2; ++k) {
    const std::string& a = last.inputs[static_cast<size_t>(k)];
    const std::string& b = last.inputs[static_cast<size_t>(1 - k)];
    const ir::Node* half = m.producer(a, "Mul");
    if (half == nullptr) continue;
    const auto h = m.other_than_scalar(*half, 0.5);
    if (!h) continue;
    // (x * 0.5) * (1 + g)
    if (auto rest = one_plus(b); rest && rest->first == *h) {
      rest->second.push_back(half);
      return rest;
    }
    // (0.5 * (1 + g)) * x
    if (auto rest = one_plus(*h); rest && rest->first == b) {
      rest->second.push_back(half);
      return rest;
    }
  }
  return std::nullopt;
}

// 1 + Erf(x / sqrt 2) (or x * (1 / sqrt 2)): x and its nodes.
std::optional<std::pair<std::string, std::vector<const ir::Node*>>> one_plus_erf(const Matcher& m, const std::string& v) {
  const ir::Node* add = m.producer(v, "Add");
  if (add == nullptr) return std::nullopt;
  const auto e = m.other_than_scalar(*add, 1.0);
  const ir::Node* erf = e ? m.producer(*e, "Erf") : nullptr;
  if (erf == nullptr || erf->inputs.size() != 1) return std::nullopt;
  const ir::Node* scale = m.producer(erf->inputs[0], "Div");
  std::optional<std::string> x;
  if (scale != nullptr && m.scalar(scale->inputs.size() == 2 ? scale->inputs[1] : "") &&
      std::abs(*m.scalar(scale->inputs[1]) - std::sqrt(2.0)) < 1e-4) {
    x = scale->inputs[0];
  } else if ((scale = m.producer(erf->inputs[0], "Mul")) != nullptr) {
    x = m.other_than_scalar(*scale, 1.0 / std::sqrt(2.0));
  }
  if (!x) return std::nullopt;
  return std::make_pair(*x, std::vector<const ir::Node*>{add, erf, scale});
}

// 1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)), x^3 as Pow(x, 3) or x * x * x: x and its nodes.
std::optional<std::pair<std::string, std::vector<const ir::Node*>>> one_plus_tanh(const Matcher& m, const std::string& v) {
  const ir::Node* add = m.producer(v, "Add");
  if (add == nullptr) return std::nullopt;
  const auto t = m.other_than_scalar(*add, 1.0);
  const ir::Node* tanh = t ? m.producer(*t, "Tanh") : nullptr;
  if (tanh == nullptr || tanh->inputs.size() != 1) return std::nullopt;
  const ir::Node* outer = m.producer(tanh->inputs[0], "Mul");
  const auto sum_name = outer ? m.other_than_scalar(*outer, std::sqrt(2.0 / M_PI)) : std::nullopt;
  const ir::Node* sum = sum_name ? m.producer(*sum_name, "Add") : nullptr;
  if (sum == nullptr || sum->inputs.size() != 2) return std::nullopt;
  for (int k = 0; k < 2; ++k) {
    const std::string& x = sum->inputs[static_cast<size_t>(k)];
    const ir::Node* cubed_scaled = m.producer(sum->inputs[static_cast<size_t>(1 - k)], "Mul");
    const auto cube_name = cubed_scaled ? m.other_than_scalar(*cubed_scaled, 0.044715) : std::nullopt;
    if (!cube_name) continue;
    std::vector<const ir::Node*> nodes{add, tanh, outer, sum, cubed_scaled};
    if (const ir::Node* pow = m.producer(*cube_name, "Pow")) {
      if (pow->inputs.size() == 2 && pow->inputs[0] == x && m.scalar(pow->inputs[1]) == 3.0) {
        nodes.push_back(pow);
        return std::make_pair(x, nodes);
      }
    }
    if (const ir::Node* mul3 = m.producer(*cube_name, "Mul"); mul3 != nullptr && mul3->inputs.size() == 2) {
      for (int j = 0; j < 2; ++j) {
        const ir::Node* sq = m.producer(mul3->inputs[static_cast<size_t>(j)], "Mul");
        if (sq != nullptr && mul3->inputs[static_cast<size_t>(1 - j)] == x && sq->inputs.size() == 2 &&
            sq->inputs[0] == x && sq->inputs[1] == x) {
          nodes.push_back(mul3);
          nodes.push_back(sq);
          return std::make_pair(x, nodes);
        }
      }
    }
  }
  return std::nullopt;
}

bool gelu(Matcher& m, size_t i) {
  for (const bool tanh : {false, true}) {
    const auto hit = half_x_one_plus(m, m.g_.nodes[i], [&](const std::string& v) {
      return tanh ? one_plus_tanh(m, v) : one_plus_erf(m, v);
    });
    if (!hit) continue;
    for (const ir::Node* n : hit->second) m.kill(n);
    m.become(i, true, "Gelu", {hit->first});
    if (tanh) m.g_.nodes[i].attributes.set(ir::Attribute::of_string("approximate", "tanh"));
    return true;
  }
  return false;
}

// ReduceMean over one axis only, keeping it — the last one, or (`*channels_first`) axis 1 of
// a 4-D tensor (a channels-first LayerNorm over C): its input.
std::optional<std::string> norm_mean(const Matcher& m, const std::string& v, const ir::Node** node,
                                     bool* channels_first) {
  const ir::Node* r = m.producer(v, "ReduceMean");
  if (r == nullptr || r->inputs.size() != 1 || r->attributes.get_int("keepdims", 1) == 0) return std::nullopt;
  const auto axes = r->attributes.get_ints("axes", {});
  const ir::Value& in = m.g_.value(r->inputs[0]);
  if (!in.shape || axes.size() != 1) return std::nullopt;
  const auto rank = static_cast<int64_t>(in.shape->size());
  const int64_t axis = axes[0] < 0 ? axes[0] + rank : axes[0];
  if (rank == 0 || (axis != rank - 1 && !(rank == 4 && axis == 1))) return std::nullopt;
  *node = r;
  *channels_first = axis != rank - 1;
  return r->inputs[0];
}

// The length of `x`'s last axis (or axis 1) when static.
std::optional<int64_t> dim_of(const ir::Graph& g, const std::string& x, bool axis1) {
  const auto& s = g.value(x).shape;
  if (!s || s->empty() || (axis1 && s->size() < 2)) return std::nullopt;
  const ir::Dim& d = axis1 ? (*s)[1] : s->back();
  if (!d.known()) return std::nullopt;
  return d.value;
}

// A constant broadcast along the last axis only (sizes [..., 1, C] or [C]), as [C]; with
// `axis1`, along axis 1 of a 4-D tensor ([C, 1, 1] or [1, C, 1, 1]).
std::optional<at::Tensor> row(const ir::Graph& g, const std::string& name, int64_t c, bool axis1 = false) {
  const at::Tensor* t = constant(g, name);
  if (t == nullptr || !t->is_floating_point() || t->numel() != c || t->dim() < 1) return std::nullopt;
  if (axis1 ? (t->dim() < 3 || t->size(-3) != c) : t->size(-1) != c) return std::nullopt;
  return t->to(at::kFloat).reshape({c});
}

bool layer_norm(Matcher& m, size_t i) {
  // Anchor: Div(d, Sqrt(Add(ReduceMean(Pow(d, 2)), eps))), d = Sub(x, ReduceMean(x)).
  const ir::Node& div = m.g_.nodes[i];
  if (!is(div, "Div") || div.inputs.size() != 2 || !m.g_.has_value(div.outputs[0])) return false;
  const ir::Node* sub = m.producer(div.inputs[0], "Sub", /*shared_ok=*/true);
  const ir::Node* sqrt = m.producer(div.inputs[1], "Sqrt");
  if (sub == nullptr || sqrt == nullptr || sub->inputs.size() != 2) return false;
  const std::string x = sub->inputs[0];
  const ir::Node* mean = nullptr;
  bool channels_first = false, var_channels_first = false;
  if (norm_mean(m, sub->inputs[1], &mean, &channels_first) != x) return false;
  const ir::Node* add = m.producer(sqrt->inputs[0], "Add");
  std::optional<double> eps;
  std::string var;
  if (add != nullptr && add->inputs.size() == 2) {
    for (int k = 0; k < 2; ++k) {
      if (auto e = m.scalar(add->inputs[static_cast<size_t>(k)])) {
        eps = e;
        var = add->inputs[static_cast<size_t>(1 - k)];
      }
    }
  }
  if (!eps || *eps < 0) return false;
  const ir::Node* var_mean = nullptr;
  const auto sq = norm_mean(m, var, &var_mean, &var_channels_first);
  if (var_channels_first != channels_first) return false;
  const ir::Node* pow = sq ? m.producer(*sq, "Pow") : nullptr;
  const ir::Node* square = nullptr;
  if (pow != nullptr && pow->inputs.size() == 2 && pow->inputs[0] == sub->outputs[0] && m.scalar(pow->inputs[1]) == 2.0) {
    square = pow;
  } else if (const ir::Node* mul = sq ? m.producer(*sq, "Mul") : nullptr;
             mul != nullptr && mul->inputs.size() == 2 && mul->inputs[0] == sub->outputs[0] &&
             mul->inputs[1] == sub->outputs[0]) {
    square = mul;
  }
  if (square == nullptr) return false;
  // d is read by the square and the Div only.
  const auto& readers = m.g_.value(sub->outputs[0]).consumers;
  if (readers.size() != 2 || m.g_.value(sub->outputs[0]).is_graph_output) return false;
  const auto c = dim_of(m.g_, x, channels_first);
  if (!c) return false;
  // Optional scale and shift after it.
  at::Tensor gamma = at::ones({*c}), beta = at::zeros({*c});
  size_t last = i;
  std::vector<const ir::Node*> nodes{sub, mean, sqrt, add, var_mean, square};
  std::string other;
  if (const ir::Node* mul = m.reader(div.outputs[0], "Mul", &other)) {
    if (auto g = row(m.g_, other, *c, channels_first)) {
      gamma = *g;
      nodes.push_back(&div);
      last = static_cast<size_t>(mul - m.g_.nodes.data());
      const ir::Node* plus = m.reader(mul->outputs[0], "Add", &other);
      if (auto b = plus ? row(m.g_, other, *c, channels_first) : std::nullopt) {
        beta = *b;
        nodes.push_back(mul);
        last = static_cast<size_t>(plus - m.g_.nodes.data());
      }
    }
  }
  // The whole pattern must be the float path of x.
  if (m.g_.value(x).dtype != ir::dtype_of(at::kFloat)) return false;
  const std::string g_name = add_initializer(m.g_, x + "_ln_scale", gamma);
  const std::string b_name = add_initializer(m.g_, x + "_ln_bias", beta);
  const auto ln_attributes = [&](ir::Node& n) {
    n.attributes.set(ir::Attribute::of_int("axis", -1));
    n.attributes.set(ir::Attribute::of_float("epsilon", static_cast<float>(*eps)));
  };
  if (!channels_first) {
    for (const ir::Node* n : nodes) m.kill(n);
    m.become(last, false, "LayerNormalization", {x, g_name, b_name});
    ln_attributes(m.g_.nodes[last]);
    return true;
  }
  // Over the channels of NCHW: Transpose to NHWC, LayerNormalization over the last axis,
  // Transpose back (the oneDNN path runs the transposes as views). The two means' nodes become
  // the first two (they come before the last node, in order).
  const ir::Shape xs = *m.g_.value(x).shape;
  const ir::Shape nhwc{xs[0], xs[2], xs[3], xs[1]};
  const size_t first = static_cast<size_t>(mean - m.g_.nodes.data());
  const size_t second = static_cast<size_t>(var_mean - m.g_.nodes.data());
  for (const ir::Node* n : nodes) {
    if (n != mean && n != var_mean) m.kill(n);
  }
  const std::string t = fresh_name(m.g_, x + "_nhwc");
  const std::string l = fresh_name(m.g_, x + "_nhwc_ln");
  for (const auto& [name, shape] : {std::pair{t, nhwc}, std::pair{l, nhwc}}) {
    ir::Value& v = m.g_.values[name];
    v.name = name;
    v.dtype = ir::dtype_of(at::kFloat);
    v.shape = shape;
  }
  m.become(first, false, "Transpose", {x});
  m.g_.nodes[first].outputs = {t};
  m.g_.nodes[first].attributes.set(ir::Attribute::of_ints("perm", {0, 2, 3, 1}));
  m.become(second, false, "LayerNormalization", {t, g_name, b_name});
  m.g_.nodes[second].outputs = {l};
  ln_attributes(m.g_.nodes[second]);
  m.become(last, false, "Transpose", {l});
  m.g_.nodes[last].attributes.set(ir::Attribute::of_ints("perm", {0, 3, 1, 2}));
  return true;
}

// Transpose(Transpose(x, p1), p2) whose permutations compose to the identity: its readers
// read x (neither transpose's output protected, the inner one read only by the outer).
bool transpose_pair(Matcher& m, size_t i) {
  const ir::Node& outer = m.g_.nodes[i];
  if (!is(outer, "Transpose") || outer.inputs.size() != 1 || outer.outputs.size() != 1 ||
      m.protect_.count(outer.outputs[0])) {
    return false;
  }
  const ir::Node* inner = m.producer(outer.inputs[0], "Transpose");
  if (inner == nullptr || inner->inputs.size() != 1) return false;
  const auto p1 = inner->attributes.get_ints("perm", {}), p2 = outer.attributes.get_ints("perm", {});
  if (p1.empty() || p1.size() != p2.size()) return false;  // both perms written out
  for (size_t k = 0; k < p2.size(); ++k) {
    if (p2[k] < 0 || p2[k] >= static_cast<int64_t>(p1.size()) || p1[static_cast<size_t>(p2[k])] != static_cast<int64_t>(k)) {
      return false;
    }
  }
  const std::string x = inner->inputs[0], y = outer.outputs[0];
  m.kill(inner);
  m.kill(&outer);
  replace_uses(m.g_, y, x);
  m.count();
  return true;
}

bool matmul(Matcher& m, size_t i) {
  const ir::Node& mm = m.g_.nodes[i];
  if (!is(mm, "MatMul") || mm.inputs.size() != 2 || mm.outputs.size() != 1) return false;
  const at::Tensor* w = constant(m.g_, mm.inputs[1]);
  if (w == nullptr || w->scalar_type() != at::kFloat || w->dim() != 2 || constant(m.g_, mm.inputs[0]) != nullptr) {
    return false;
  }
  const ir::Value& x = m.g_.value(mm.inputs[0]);
  if (x.dtype != ir::dtype_of(at::kFloat) || !x.shape || x.shape->size() < 2) return false;
  std::vector<std::string> inputs{mm.inputs[0], mm.inputs[1]};
  size_t last = i;
  std::string other;
  if (const ir::Node* add = m.reader(mm.outputs[0], "Add", &other)) {
    if (auto b = row(m.g_, other, w->size(1))) {
      inputs.push_back(add_initializer(m.g_, other + "_row", *b));
      m.kill(&mm);
      last = static_cast<size_t>(add - m.g_.nodes.data());
    }
  }
  m.become(last, true, "FusedMatMul", inputs);
  return true;
}

}  // namespace

int recognise_patterns(ir::Graph& g, const std::set<std::string>& protect) {
  Matcher m(g, protect);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!m.dead(i) && !gelu(m, i) && !silu(m, i) && !hard_swish(m, i) && !transpose_pair(m, i)) layer_norm(m, i);
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!m.dead(i)) matmul(m, i);
  }
  return m.finish();
}

}  // namespace graft::exec::passes
