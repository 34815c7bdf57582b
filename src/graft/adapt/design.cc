#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "graft/adapt/adapter.h"
#include "graft/core/error.h"

namespace graft::adapt {
namespace {

using Kind = Layer::Kind;

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::kConv: return "conv";
    case Kind::kConvTranspose: return "convt";
    case Kind::kBatchNorm: return "bn";
    case Kind::kRelu: return "relu";
    case Kind::kRelu6: return "relu6";
    case Kind::kAvgPool: return "avgpool";
    case Kind::kMaxPool: return "maxpool";
    case Kind::kResize: return "resize";
    case Kind::kSplit: return "split";
  }
  return "?";
}

std::string pair(const char* both, const char* a, const char* b, int64_t x, int64_t y) {
  if (x == y) return std::string(both) + "=" + std::to_string(x);
  return std::string(a) + "=" + std::to_string(x) + "," + b + "=" + std::to_string(y);
}

Layer conv(int64_t c, const Ksp& h, const Ksp& w, bool bias = false) {
  Layer l;
  l.kind = Kind::kConv;
  l.channels = c;
  l.kh = h.k;
  l.kw = w.k;
  l.sh = h.s;
  l.sw = w.s;
  l.ph = h.p;
  l.pw = w.p;
  l.bias = bias;
  return l;
}

Layer resize_to(int64_t h, int64_t w) {
  Layer l;
  l.kind = Kind::kResize;
  l.out_h = h;
  l.out_w = w;
  return l;
}

Layer simple(Kind k) {
  Layer l;
  l.kind = k;
  return l;
}

void finish(std::vector<Layer>& layers, Activation a) {
  if (a == Activation::kRelu) layers.push_back(simple(Kind::kRelu));
  if (a == Activation::kRelu6) layers.push_back(simple(Kind::kRelu6));
}

bool clean(const Ksp& x) { return x.k >= x.s && 2 * x.p <= x.k && x.k <= 7; }

int64_t round8(double c) {
  const auto r = static_cast<int64_t>(std::llround(c));
  return r >= 16 ? r / 8 * 8 : std::max<int64_t>(r, 1);
}

std::string kib(int64_t bytes) {
  std::ostringstream s;
  s.precision(3);
  s << bytes / 1024.0 << " KiB";
  return s.str();
}

}  // namespace

std::string Shape3::str() const {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

std::string Layer::spec() const {
  std::string s = kind_name(kind);
  switch (kind) {
    case Kind::kConv:
    case Kind::kConvTranspose:
      s += ":" + pair("k", "kh", "kw", kh, kw) + "," + pair("s", "sh", "sw", sh, sw) + "," +
           pair("p", "ph", "pw", ph, pw);
      if (kind == Kind::kConvTranspose && (oph || opw)) s += "," + pair("op", "oph", "opw", oph, opw);
      s += ",c=" + std::to_string(channels);
      if (bias) s += ",bias";
      return s;
    case Kind::kAvgPool:
    case Kind::kMaxPool:
      return s + ":" + pair("k", "kh", "kw", kh, kw) + "," + pair("s", "sh", "sw", sh, sw) + "," +
             pair("p", "ph", "pw", ph, pw);
    case Kind::kResize:
      return s + ":h=" + std::to_string(out_h) + ",w=" + std::to_string(out_w);
    default:
      return s;
  }
}

std::string Adapter::spec() const {
  std::string s;
  for (const auto& l : layers) s += (s.empty() ? "" : ";") + l.spec();
  return s;
}

std::vector<Ksp> solve_conv(int64_t in, int64_t out) {
  std::vector<Ksp> found;
  if (in < 1 || out < 1) return found;
  for (int64_t s = 1; s <= in; ++s) {
    for (int64_t k = 1; k <= 11; ++k) {
      for (int64_t p = 0; p < k; ++p) {
        const int64_t span = in + 2 * p - k;
        if (span >= 0 && span / s + 1 == out) found.push_back({k, s, p});
      }
    }
  }
  const double ratio = static_cast<double>(in) / out;
  auto score = [&](const Ksp& x) {
    return std::make_tuple(std::fabs(x.s - ratio) > 0.5 + 1e-9, x.k < x.s, 2 * x.p > x.k,
                           x.k % 2 == 0, std::fabs(x.s - ratio), x.k, x.p);
  };
  std::stable_sort(found.begin(), found.end(), [&](const Ksp& a, const Ksp& b) { return score(a) < score(b); });
  return found;
}

void evaluate(Adapter& a, const Shape3& in) {
  a.in = in;
  Shape3 s = in;
  a.params = a.macs = 0;
  a.split_after = -1;
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const Layer& l = a.layers[i];
    const std::string where = "adapter layer " + std::to_string(i + 1) + " (" + l.spec() + ")";
    auto spatial = [&](int64_t size, int64_t k, int64_t st, int64_t p) {
      if (k < 1 || st < 1 || p < 0) throw Error(where + ": kernel and stride must be positive, padding non-negative");
      if (p >= k) throw Error(where + ": padding " + std::to_string(p) + " must be smaller than the kernel " + std::to_string(k));
      const int64_t span = size + 2 * p - k;
      if (span < 0) throw Error(where + ": kernel " + std::to_string(k) + " is larger than its padded input " + std::to_string(size + 2 * p));
      return span / st + 1;
    };
    switch (l.kind) {
      case Kind::kConv: {
        if (l.channels < 1) throw Error(where + ": give the output channels, c=N");
        const int64_t h = spatial(s.h, l.kh, l.sh, l.ph), w = spatial(s.w, l.kw, l.sw, l.pw);
        a.params += l.channels * s.c * l.kh * l.kw + (l.bias ? l.channels : 0);
        a.macs += l.channels * h * w * s.c * l.kh * l.kw;
        s = {l.channels, h, w};
        break;
      }
      case Kind::kConvTranspose: {
        if (l.channels < 1) throw Error(where + ": give the output channels, c=N");
        if (l.kh < 1 || l.kw < 1 || l.sh < 1 || l.sw < 1 || l.ph < 0 || l.pw < 0) throw Error(where + ": bad kernel, stride or padding");
        if (l.oph >= l.sh || l.opw >= l.sw || l.oph < 0 || l.opw < 0) throw Error(where + ": output padding must be below the stride");
        const int64_t h = (s.h - 1) * l.sh - 2 * l.ph + l.kh + l.oph;
        const int64_t w = (s.w - 1) * l.sw - 2 * l.pw + l.kw + l.opw;
        if (h < 1 || w < 1) throw Error(where + ": the output would be empty");
        a.params += s.c * l.channels * l.kh * l.kw + (l.bias ? l.channels : 0);
        a.macs += s.c * s.h * s.w * l.channels * l.kh * l.kw;
        s = {l.channels, h, w};
        break;
      }
      case Kind::kBatchNorm: a.params += 4 * s.c; break;
      case Kind::kRelu:
      case Kind::kRelu6: break;
      case Kind::kAvgPool:
      case Kind::kMaxPool:
        s.h = spatial(s.h, l.kh, l.sh, l.ph);
        s.w = spatial(s.w, l.kw, l.sw, l.pw);
        break;
      case Kind::kResize:
        if (l.out_h < 1 || l.out_w < 1) throw Error(where + ": give the size, h=H,w=W");
        s.h = l.out_h;
        s.w = l.out_w;
        break;
      case Kind::kSplit:
        if (a.split_after >= 0) throw Error(where + ": only one split point");
        a.split_after = static_cast<int>(i) - 1;
        a.split_shape = s;
        break;
    }
  }
  a.out = s;
}

Adapter parse_spec(const std::string& spec, const Shape3& from) {
  Adapter a;
  a.family = "custom";
  std::stringstream layers(spec);
  int index = 0;
  for (std::string item; std::getline(layers, item, ';');) {
    ++index;
    const std::string where = "bad adapter spec '" + spec + "', layer " + std::to_string(index) + " '" + item + "'";
    const size_t colon = item.find(':');
    const std::string kind = item.substr(0, colon);
    static const std::map<std::string, Kind> kKinds = {
        {"conv", Kind::kConv}, {"convt", Kind::kConvTranspose}, {"bn", Kind::kBatchNorm},
        {"relu", Kind::kRelu}, {"relu6", Kind::kRelu6}, {"avgpool", Kind::kAvgPool},
        {"maxpool", Kind::kMaxPool}, {"resize", Kind::kResize}, {"split", Kind::kSplit}};
    auto k = kKinds.find(kind);
    if (k == kKinds.end()) {
      throw Error(where + ": unknown layer kind (conv, convt, bn, relu, relu6, avgpool, maxpool, resize, split)");
    }
    Layer l;
    l.kind = k->second;
    if (colon != std::string::npos) {
      std::stringstream kv(item.substr(colon + 1));
      for (std::string field; std::getline(kv, field, ',');) {
        if (field == "bias") {
          l.bias = true;
          continue;
        }
        const size_t eq = field.find('=');
        const std::string key = field.substr(0, eq);
        const std::string value = eq == std::string::npos ? "" : field.substr(eq + 1);
        if (value.empty() || value.size() > 6 || value.find_first_not_of("0123456789") != std::string::npos) {
          throw Error(where + ": '" + field + "' needs a non-negative whole number, e.g. k=3");
        }
        const int64_t v = std::stoll(value);
        if (key == "k") l.kh = l.kw = v;
        else if (key == "kh") l.kh = v;
        else if (key == "kw") l.kw = v;
        else if (key == "s") l.sh = l.sw = v;
        else if (key == "sh") l.sh = v;
        else if (key == "sw") l.sw = v;
        else if (key == "p") l.ph = l.pw = v;
        else if (key == "ph") l.ph = v;
        else if (key == "pw") l.pw = v;
        else if (key == "op") l.oph = l.opw = v;
        else if (key == "oph") l.oph = v;
        else if (key == "opw") l.opw = v;
        else if (key == "c") l.channels = v;
        else if (key == "h") l.out_h = v;
        else if (key == "w") l.out_w = v;
        else throw Error(where + ": unknown key '" + key + "' (k, kh, kw, s, sh, sw, p, ph, pw, op, c, h, w, bias)");
      }
    }
    a.layers.push_back(l);
  }
  if (a.layers.empty()) throw Error("empty adapter spec");
  // A conv not followed by BatchNorm gets a bias, as a user writing a bare conv expects.
  for (size_t i = 0; i < a.layers.size(); ++i) {
    Layer& l = a.layers[i];
    if ((l.kind == Kind::kConv || l.kind == Kind::kConvTranspose) &&
        (i + 1 == a.layers.size() || a.layers[i + 1].kind != Kind::kBatchNorm)) {
      l.bias = true;
    }
  }
  evaluate(a, from);
  return a;
}

Target target_of(const ir::Graph& g, const std::string& tensor) {
  Target t;
  t.shape = shape_of(g, tensor);
  const ir::Value& v = g.value(tensor);
  const ir::Node* producer = v.producer >= 0 ? &g.nodes[static_cast<size_t>(v.producer)] : nullptr;
  auto scalar = [&](size_t input, const char* attr, double fallback) {
    if (producer->inputs.size() > input && !producer->inputs[input].empty()) {
      auto it = g.initializers.find(producer->inputs[input]);
      if (it != g.initializers.end() && it->second.numel() == 1 && !it->second.is_meta()) {
        return it->second.reshape({-1})[0].item<double>();
      }
      return std::nan("");
    }
    return static_cast<double>(producer->attributes.get_float(attr, static_cast<float>(fallback)));
  };
  for (int c : v.consumers) {
    const std::string& op = g.nodes[static_cast<size_t>(c)].op_type;
    if (op == "BatchNormalization" || op == "Add") {
      t.why = "'" + tensor + "' feeds " + op + " (a pre-activation): the adapter ends linear";
      return t;
    }
  }
  // Pooling, a zero Pad and Identity keep their input's range: a max-pooled ReLU output is as
  // non-negative as the ReLU's. Look through them to the op that sets the range.
  std::string via, cur = tensor;
  for (int hops = 0; producer && hops < 8; ++hops) {
    const std::string& op = producer->op_type;
    if (producer->outputs.empty() || producer->outputs[0] != cur) break;  // MaxPool's Indices, say
    bool keeps = op == "MaxPool" || op == "AveragePool" || op == "Identity";
    if (op == "Pad") {
      const std::string mode = producer->attributes.get_string("mode", "constant");
      const double value = producer->inputs.size() > 2 && !producer->inputs[2].empty() ? scalar(2, "value", 0)
                                                                                        : producer->attributes.get_float("value", 0);
      keeps = mode != "constant" || value == 0.0;
    }
    if (!keeps || producer->inputs.empty()) break;
    const ir::Value& in = g.value(producer->inputs[0]);
    if (in.producer < 0) break;
    via += (via.empty() ? " (through " : ", ") + op;
    cur = producer->inputs[0];
    producer = &g.nodes[static_cast<size_t>(in.producer)];
  }
  if (!via.empty()) via += ")";
  if (producer && producer->op_type == "Relu") {
    t.activation = Activation::kRelu;
    t.why = "'" + tensor + "' comes out of Relu" + via + " (non-negative): the adapter ends with Relu";
  } else if (producer && producer->op_type == "Clip" && scalar(1, "min", -INFINITY) == 0.0 &&
             scalar(2, "max", INFINITY) == 6.0) {
    t.activation = Activation::kRelu6;
    t.why = "'" + tensor + "' comes out of Clip(0, 6)" + via + " (ReLU6): the adapter ends with ReLU6";
  } else {
    t.why = "'" + tensor + "' comes out of " + (producer ? producer->op_type : std::string("the input")) + via +
            ", not a ReLU: the adapter ends linear";
  }
  return t;
}

Shape3 shape_of(const ir::Graph& g, const std::string& tensor) {
  const ir::Value& v = g.value(tensor);
  if (!v.shape || v.shape->size() != 4 || !(*v.shape)[1].known() || !(*v.shape)[2].known() ||
      !(*v.shape)[3].known()) {
    throw Error("tensor '" + tensor + "' has shape " + ir::shape_str(v.shape) +
                "; an adapter needs a known (N, C, H, W) tensor (give --input-shape if the model's input size is symbolic)");
  }
  return {(*v.shape)[1].value, (*v.shape)[2].value, (*v.shape)[3].value};
}

std::vector<Adapter> design(const Shape3& from, const Target& to, const std::string& family) {
  std::vector<Adapter> out;
  auto add = [&](const std::string& fam, std::vector<Layer> layers, const std::string& notes) {
    if (!family.empty() && family != fam) return;
    Adapter a;
    a.family = fam;
    a.layers = std::move(layers);
    a.notes = notes;
    evaluate(a, from);
    if (!(a.out == to.shape)) return;  // every candidate is verified, never assumed
    for (const auto& o : out) {
      if (o.spec() == a.spec()) return;
    }
    out.push_back(std::move(a));
  };
  const Shape3& t = to.shape;
  const bool down = t.h <= from.h && t.w <= from.w;
  const auto hs = solve_conv(from.h, t.h), ws = solve_conv(from.w, t.w);
  auto same_for_w = [&](const Ksp& h) -> std::optional<Ksp> {
    if (from.h == from.w && t.h == t.w) return h;
    for (const auto& w : ws) {
      if (clean(w)) return w;
    }
    return std::nullopt;
  };
  auto conv_bn = [&](int64_t c, const Ksp& h, const Ksp& w) {
    std::vector<Layer> l{conv(c, h, w), simple(Kind::kBatchNorm)};
    finish(l, to.activation);
    return l;
  };

  // Resize to the target size, then a 3x3 convolution: fits any shape pair.
  bool resize_conv_added = false;
  auto add_resize_conv = [&] {
    if (resize_conv_added) return;
    resize_conv_added = true;
    std::vector<Layer> layers;
    if (t.h != from.h || t.w != from.w) layers.push_back(resize_to(t.h, t.w));
    for (auto& l : conv_bn(t.c, {3, 1, 1}, {3, 1, 1})) layers.push_back(l);
    add("conv", layers, t.h == from.h && t.w == from.w ? "same size: a 3x3 convolution"
                                                       : "bilinear Resize to " + std::to_string(t.h) + "x" +
                                                             std::to_string(t.w) + ", then a 3x3 convolution");
  };

  // conv: the best clean solution, the cheapest small kernel at that stride, another stride.
  std::optional<Ksp> best;
  if (down) {
    for (const auto& h : hs) {
      if (clean(h) && h.k % 2 == 1) {
        best = h;
        break;
      }
    }
    if (best) {
      if (auto w = same_for_w(*best)) {
        add("conv", conv_bn(t.c, *best, *w),
            "k=" + std::to_string(best->k) + " >= s=" + std::to_string(best->s) + ": every input pixel is used");
      }
      for (const auto& h : hs) {
        if (h.s == best->s && h.k < best->k && h.k >= 3 && h.k % 2 == 1 && 2 * h.p <= h.k) {
          if (auto w = same_for_w(h)) {
            add("conv", conv_bn(t.c, h, *w),
                "cheapest kernel; k=" + std::to_string(h.k) + " < s=" + std::to_string(h.s) +
                    " skips " + std::to_string(h.s - h.k) + " of every " + std::to_string(h.s) + " rows/columns");
          }
          break;
        }
      }
      for (const auto& h : hs) {
        if (h.s != best->s && clean(h) && h.k % 2 == 1) {
          if (auto w = same_for_w(h)) add("conv", conv_bn(t.c, h, *w), "another stride");
          break;
        }
      }
    }
    // A stack of stride-2 convolutions for large ratios, then one exact convolution.
    if (from.h >= 4 * t.h && from.w >= 4 * t.w) {
      std::vector<Layer> layers;
      Shape3 cur = from;
      int steps = 0;
      const double ratio = static_cast<double>(from.h) / t.h;
      const int total = static_cast<int>(std::floor(std::log2(ratio)));
      while (cur.h >= 4 * t.h && cur.w >= 4 * t.w) {
        ++steps;
        const int64_t c = round8(from.c * std::pow(double(t.c) / from.c, double(steps) / total));
        layers.push_back(conv(c, {3, 2, 1}, {3, 2, 1}));
        layers.push_back(simple(Kind::kBatchNorm));
        layers.push_back(simple(Kind::kRelu));
        cur = {c, (cur.h - 1) / 2 + 1, (cur.w - 1) / 2 + 1};
      }
      const auto last_h = solve_conv(cur.h, t.h), last_w = solve_conv(cur.w, t.w);
      auto pick = [](const std::vector<Ksp>& v) -> std::optional<Ksp> {
        for (const auto& x : v) {
          if (clean(x) && x.k % 2 == 1) return x;
        }
        return std::nullopt;
      };
      auto lh = pick(last_h), lw = pick(last_w);
      if (lh && lw) {
        for (auto& l : conv_bn(t.c, *lh, *lw)) layers.push_back(l);
        add("conv", layers, "stack of " + std::to_string(steps) + " stride-2 convolutions for a " +
                                std::to_string(static_cast<int>(ratio)) + "x reduction");
      }
    }
  } else if (t.h >= from.h && t.w >= from.w) {
    // Upsampling: bilinear Resize then a 3x3 convolution first, a transposed convolution with an
    // integer stride (if one fits) second. Trained with graft train's defaults, the Resize form
    // was the better of the two on the bundled pair (7x7 -> 17x17: 92.28 % against 91.90 %), and
    // in the search's first rung (docs/SEARCH.md, "Defaults without a search").
    add_resize_conv();
    auto solve_t = [](int64_t in, int64_t o) -> std::optional<std::array<int64_t, 4>> {
      const int64_t s = std::max<int64_t>(1, static_cast<int64_t>(std::llround(double(o) / in)));
      for (int64_t k = s; k <= s + 4; ++k) {
        for (int64_t p = 0; p <= k / 2; ++p) {
          for (int64_t op = 0; op < s; ++op) {
            if ((in - 1) * s - 2 * p + k + op == o) return std::array<int64_t, 4>{k, s, p, op};
          }
        }
      }
      return std::nullopt;
    };
    auto th = solve_t(from.h, t.h), tw = solve_t(from.w, t.w);
    if (th && tw) {
      Layer l;
      l.kind = Kind::kConvTranspose;
      l.channels = t.c;
      l.kh = (*th)[0]; l.sh = (*th)[1]; l.ph = (*th)[2]; l.oph = (*th)[3];
      l.kw = (*tw)[0]; l.sw = (*tw)[1]; l.pw = (*tw)[2]; l.opw = (*tw)[3];
      std::vector<Layer> layers{l, simple(Kind::kBatchNorm)};
      finish(layers, to.activation);
      add("conv", layers, "transposed convolution for upsampling");
    }
  }
  add_resize_conv();

  // linear: resample, then a 1x1 convolution (closed-form least-squares initialisation).
  {
    std::vector<Layer> layers;
    std::string how;
    const int64_t sh = from.h / std::max<int64_t>(t.h, 1), sw = from.w / std::max<int64_t>(t.w, 1);
    if (t.h == from.h && t.w == from.w) {
      how = "no resampling";
    } else if (down && sh >= 1 && sw >= 1) {
      Layer p;
      p.kind = Kind::kAvgPool;
      p.sh = sh;
      p.sw = sw;
      p.kh = from.h - (t.h - 1) * sh;
      p.kw = from.w - (t.w - 1) * sw;
      layers.push_back(p);
      how = "average pooling k=" + std::to_string(p.kh) + ", s=" + std::to_string(sh);
    } else {
      const Layer r = resize_to(t.h, t.w);
      layers.push_back(r);
      how = "bilinear Resize";
    }
    Layer c = conv(t.c, {1, 1, 0}, {1, 1, 0}, /*bias=*/true);
    layers.push_back(c);
    finish(layers, to.activation);
    add("linear", layers, how + ", then a 1x1 convolution: linear, so least squares can initialise it");
  }

  // bottleneck: encoder to B channels on the device, decoder to C2 on the server. The split
  // tensor is at most 1/8 of the source tensor. Going down, the encoder reaches the target size
  // (a clean strided convolution, else Resize then a 3x3 convolution); going up, it stays at the
  // source size and the decoder resizes, so the bytes sent never grow with the target.
  {
    const bool encode_at_source = !down;
    const int64_t sh = encode_at_source ? from.h : t.h, sw = encode_at_source ? from.w : t.w;
    const int64_t budget = from.c * from.h * from.w / (8 * sh * sw);
    const int64_t b = round8(std::max<int64_t>(1, std::min(budget, std::min(from.c, t.c) / 2)));
    std::vector<Layer> layers;
    if (encode_at_source) {
      layers.push_back(conv(b, {3, 1, 1}, {3, 1, 1}));
    } else if (best && same_for_w(*best)) {
      layers.push_back(conv(b, *best, *same_for_w(*best)));
    } else {
      layers.push_back(resize_to(t.h, t.w));
      layers.push_back(conv(b, {3, 1, 1}, {3, 1, 1}));
    }
    layers.push_back(simple(Kind::kBatchNorm));
    layers.push_back(simple(Kind::kRelu));
    layers.push_back(simple(Kind::kSplit));
    if (encode_at_source && (t.h != from.h || t.w != from.w)) layers.push_back(resize_to(t.h, t.w));
    for (auto& l : conv_bn(t.c, {3, 1, 1}, {3, 1, 1})) layers.push_back(l);
    const int64_t split_bytes = b * sh * sw * 4, source_bytes = from.c * from.h * from.w * 4;
    add("bottleneck", layers,
        "split tensor " + std::to_string(b) + "x" + std::to_string(sh) + "x" + std::to_string(sw) + " = " +
            kib(split_bytes) + "/image, 1/" + std::to_string(source_bytes / std::max<int64_t>(split_bytes, 1)) +
            " of the source tensor (" + kib(source_bytes) + ")");
  }

  // resample: no parameters, when the channels already agree.
  if (from.c == t.c) {
    if (down && from.h % t.h == 0 && from.w % t.w == 0) {
      for (Kind k : {Kind::kAvgPool, Kind::kMaxPool}) {
        Layer p;
        p.kind = k;
        p.kh = p.sh = from.h / t.h;
        p.kw = p.sw = from.w / t.w;
        add("resample", {p}, "no parameters");
      }
    }
    const Layer r = resize_to(t.h, t.w);
    add("resample", {r}, "no parameters: bilinear Resize");
  }
  return out;
}

Adapter validate_spec(const std::string& spec, const Shape3& from, const Target& to) {
  auto alternatives = [&](const std::vector<Layer>* user) {
    std::vector<std::string> alts;
    // Keep the user's layers and change only the first convolution's geometry, if there is one.
    if (user) {
      for (size_t i = 0; i < user->size(); ++i) {
        if ((*user)[i].kind != Kind::kConv) continue;
        const Layer& c = (*user)[i];
        auto hs = solve_conv(from.h, to.shape.h);
        // Nearest: the fewest of kernel, stride and padding changed; then the cleanest.
        auto changed = [&](const Ksp& x) { return (x.k != c.kh) + (x.s != c.sh) + (x.p != c.ph); };
        std::stable_sort(hs.begin(), hs.end(), [&](const Ksp& a, const Ksp& b) {
          return std::make_tuple(changed(a), !clean(a)) < std::make_tuple(changed(b), !clean(b));
        });
        for (const auto& h : hs) {
          Adapter a;
          a.layers = *user;
          Layer& l = a.layers[i];
          l.kh = l.kw = h.k;
          l.sh = l.sw = h.s;
          l.ph = l.pw = h.p;
          l.channels = to.shape.c;
          try {
            evaluate(a, from);
          } catch (const Error&) {
            continue;
          }
          if (a.out == to.shape) alts.push_back(a.spec());
          if (alts.size() == 3) break;
        }
        break;
      }
    }
    for (const auto& a : design(from, to)) {
      if (alts.size() >= 4) break;
      if (std::find(alts.begin(), alts.end(), a.spec()) == alts.end()) alts.push_back(a.spec());
    }
    std::string line;
    for (const auto& a : alts) line += (line.empty() ? "" : " | ") + a;
    return line;
  };
  Adapter a;
  try {
    a = parse_spec(spec, from);
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind("bad adapter spec", 0) == 0 || msg.rfind("empty adapter", 0) == 0) throw;
    // It parsed but a layer does not fit: show what would.
    throw Error(msg + "; feasible alternatives from " + from.str() + " to " + to.shape.str() + ": " +
                alternatives(nullptr));
  }
  if (!(a.out == to.shape)) {
    throw Error("adapter '" + spec + "' maps " + from.str() + " to " + a.out.str() + ", not the target " +
                to.shape.str() + "; nearest feasible alternatives: " + alternatives(&a.layers));
  }
  return a;
}

Adapter choose(const std::string& family_or_spec, const Shape3& from, const Target& to) {
  static const char* const kFamilies[] = {"conv", "linear", "bottleneck", "resample"};
  for (const char* f : kFamilies) {
    if (family_or_spec == f) {
      auto candidates = design(from, to, f);
      if (candidates.empty()) {
        throw Error("no " + family_or_spec + " adapter maps " + from.str() + " to " + to.shape.str() +
                    (family_or_spec == "resample" ? " (resample needs equal channels)" : ""));
      }
      return candidates.front();
    }
  }
  return validate_spec(family_or_spec, from, to);
}

}  // namespace graft::adapt
