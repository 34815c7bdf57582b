// Ops that move data without arithmetic: Flatten, Reshape, Transpose, Concat, Split, Slice,
// Squeeze, Unsqueeze, Identity, Dropout, Constant, Shape, Gather, Cast.
#include <ATen/ATen.h>

#include <algorithm>

#include "graft/ops/kernel.h"

namespace graft::ops {
namespace {

using Tensors = std::vector<at::Tensor>;

int64_t normalize_axis(int64_t axis, int64_t rank, const char* what) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    throw std::out_of_range(std::string(what) + " axis " + std::to_string(axis) +
                            " is out of range for rank " + std::to_string(rank));
  }
  return a;
}

// Squeeze/Unsqueeze axes: an attribute before opset 13, the optional input 1 from 13 on.
struct AxesSource {
  bool from_input = false;
  bool attr_given = false;
  std::vector<int64_t> attr;

  explicit AxesSource(const NodeContext& ctx)
      : from_input(ctx.opset >= 13),
        attr_given(ctx.node.attributes.has("axes")),
        attr(ctx.node.attributes.get_ints("axes")) {}

  std::vector<int64_t> get(const Tensors& in, bool* given) const {
    if (!from_input) {
      *given = attr_given;
      return attr;
    }
    *given = in.size() > 1 && in[1].defined();
    return *given ? to_int64_vector(in[1]) : std::vector<int64_t>{};
  }
};

Kernel make_flatten(const NodeContext& ctx) {
  const int64_t axis = ctx.node.attributes.get_int("axis", 1);
  return [axis](const Tensors& in, const RunContext&) {
    const at::Tensor& x = in[0];
    const int64_t a = axis < 0 ? axis + x.dim() : axis;
    if (a < 0 || a > x.dim()) throw std::out_of_range("Flatten axis out of range");
    int64_t rows = 1, cols = 1;
    for (int64_t i = 0; i < x.dim(); ++i) (i < a ? rows : cols) *= x.size(i);
    return Tensors{x.reshape({rows, cols})};
  };
}

Kernel make_reshape(const NodeContext& ctx) {
  const bool allow_zero = ctx.opset >= 14 && ctx.node.attributes.get_int("allowzero", 0) != 0;
  return [allow_zero](const Tensors& in, const RunContext&) {
    const at::Tensor& x = in[0];
    std::vector<int64_t> shape = to_int64_vector(in[1]);
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 0 && !allow_zero) {
        if (static_cast<int64_t>(i) >= x.dim()) throw std::out_of_range("Reshape: 0 copies a missing dimension");
        shape[i] = x.size(static_cast<int64_t>(i));
      }
    }
    return Tensors{x.reshape(shape)};
  };
}

Kernel make_slice(const NodeContext& ctx) {
  const int64_t opset = ctx.opset;
  const auto attr_starts = ctx.node.attributes.get_ints("starts");
  const auto attr_ends = ctx.node.attributes.get_ints("ends");
  const auto attr_axes = ctx.node.attributes.get_ints("axes");
  return [=](const Tensors& in, const RunContext&) {
    const at::Tensor& x = in[0];
    std::vector<int64_t> starts, ends, axes, steps;
    if (opset < 10) {
      starts = attr_starts;
      ends = attr_ends;
      axes = attr_axes;
    } else {
      starts = to_int64_vector(in[1]);
      ends = to_int64_vector(in[2]);
      if (in.size() > 3 && in[3].defined()) axes = to_int64_vector(in[3]);
      if (in.size() > 4 && in[4].defined()) steps = to_int64_vector(in[4]);
    }
    if (axes.empty()) {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
      throw std::invalid_argument("Slice: starts, ends, axes and steps differ in length");
    }
    at::Tensor y = x;
    for (size_t i = 0; i < starts.size(); ++i) {
      const int64_t axis = normalize_axis(axes[i], x.dim(), "Slice");
      const int64_t n = x.size(axis), step = steps[i];
      if (step == 0) throw std::invalid_argument("Slice: step 0");
      int64_t s = starts[i] < 0 ? starts[i] + n : starts[i];
      int64_t e = ends[i] < 0 ? ends[i] + n : ends[i];
      if (step > 0) {
        s = std::clamp<int64_t>(s, 0, n);
        e = std::clamp<int64_t>(e, 0, n);
        y = y.slice(axis, s, std::max(s, e), step);
      } else {
        s = std::clamp<int64_t>(s, 0, n - 1);
        e = std::clamp<int64_t>(e, -1, n - 1);
        at::Tensor idx = s > e ? at::arange(s, e, step, at::kLong) : at::empty({0}, at::kLong);
        y = at::index_select(y, axis, idx);
      }
    }
    return Tensors{y};
  };
}

Kernel make_split(const NodeContext& ctx) {
  const int64_t axis_attr = ctx.node.attributes.get_int("axis", 0);
  const auto split_attr = ctx.node.attributes.get_ints("split");
  const int64_t opset = ctx.opset;
  const size_t outputs = ctx.node.outputs.size();
  return [=](const Tensors& in, const RunContext&) {
    const at::Tensor& x = in[0];
    const int64_t axis = normalize_axis(axis_attr, x.dim(), "Split");
    std::vector<int64_t> sizes = opset < 13 ? split_attr
                                            : (in.size() > 1 && in[1].defined() ? to_int64_vector(in[1])
                                                                                 : std::vector<int64_t>{});
    if (sizes.empty()) {
      const int64_t n = x.size(axis), parts = static_cast<int64_t>(outputs);
      if (n % parts != 0) throw std::invalid_argument("Split: axis does not divide evenly");
      sizes.assign(outputs, n / parts);
    }
    auto pieces = at::split_with_sizes(x, sizes, axis);
    return Tensors(pieces.begin(), pieces.end());
  };
}

Kernel make_constant(const NodeContext& ctx) {
  const auto& a = ctx.node.attributes;
  at::Tensor value;
  if (auto t = a.get_tensor("value")) {
    value = *t;
  } else if (a.has("value_float")) {
    value = at::scalar_tensor(a.get_float("value_float", 0), at::kFloat);
  } else if (a.has("value_floats")) {
    const auto v = a.get_floats("value_floats");
    value = at::tensor(v, at::kFloat);
  } else if (a.has("value_int")) {
    value = at::scalar_tensor(a.get_int("value_int", 0), at::kLong);
  } else if (a.has("value_ints")) {
    value = at::tensor(a.get_ints("value_ints"), at::kLong);
  } else {
    ctx.fail("Constant without a supported value attribute (value, value_float(s), value_int(s))");
  }
  return [value](const Tensors&, const RunContext&) { return Tensors{value}; };
}

Kernel make_gather(const NodeContext& ctx) {
  const int64_t axis_attr = ctx.node.attributes.get_int("axis", 0);
  return [axis_attr](const Tensors& in, const RunContext&) {
    const at::Tensor& x = in[0];
    const int64_t axis = normalize_axis(axis_attr, x.dim(), "Gather");
    at::Tensor idx = in[1].to(at::kLong);
    idx = at::where(idx < 0, idx + x.size(axis), idx);
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().begin() + axis);
    shape.insert(shape.end(), idx.sizes().begin(), idx.sizes().end());
    shape.insert(shape.end(), x.sizes().begin() + axis + 1, x.sizes().end());
    return Tensors{at::index_select(x, axis, idx.reshape({-1})).reshape(shape)};
  };
}

}  // namespace

void register_shape(Registry& r) {
  r.add("Flatten", make_flatten);
  r.add("Reshape", make_reshape);
  r.add("Slice", make_slice);
  r.add("Split", make_split);
  r.add("Constant", make_constant);
  r.add("Gather", make_gather);
  r.add("Transpose", [](const NodeContext& ctx) -> Kernel {
    const auto perm_attr = ctx.node.attributes.get_ints("perm");
    return [perm_attr](const Tensors& in, const RunContext&) {
      std::vector<int64_t> perm = perm_attr;
      if (perm.empty()) {
        for (int64_t i = in[0].dim(); i-- > 0;) perm.push_back(i);
      }
      return Tensors{in[0].permute(perm)};
    };
  });
  r.add("Concat", [](const NodeContext& ctx) -> Kernel {
    const int64_t axis_attr = ctx.node.attributes.get_int("axis", 0);
    return [axis_attr](const Tensors& in, const RunContext&) {
      const int64_t axis = normalize_axis(axis_attr, in[0].dim(), "Concat");
      return Tensors{at::cat(in, axis)};
    };
  });
  r.add("Squeeze", [](const NodeContext& ctx) -> Kernel {
    const AxesSource source(ctx);
    return [source](const Tensors& in, const RunContext&) {
      bool given = false;
      std::vector<int64_t> axes = source.get(in, &given);
      const at::Tensor& x = in[0];
      std::vector<int64_t> keep;
      std::vector<bool> drop(static_cast<size_t>(x.dim()), false);
      for (int64_t a : axes) {
        const int64_t n = normalize_axis(a, x.dim(), "Squeeze");
        if (x.size(n) != 1) throw std::invalid_argument("Squeeze: axis " + std::to_string(a) + " is not 1");
        drop[static_cast<size_t>(n)] = true;
      }
      for (int64_t i = 0; i < x.dim(); ++i) {
        const bool squeeze = given ? drop[static_cast<size_t>(i)] : x.size(i) == 1;
        if (!squeeze) keep.push_back(x.size(i));
      }
      return Tensors{x.reshape(keep)};
    };
  });
  r.add("Unsqueeze", [](const NodeContext& ctx) -> Kernel {
    const AxesSource source(ctx);
    return [source](const Tensors& in, const RunContext&) {
      bool given = false;
      std::vector<int64_t> axes = source.get(in, &given);
      const at::Tensor& x = in[0];
      const int64_t rank = x.dim() + static_cast<int64_t>(axes.size());
      std::vector<bool> inserted(static_cast<size_t>(rank), false);
      for (int64_t a : axes) inserted[static_cast<size_t>(normalize_axis(a, rank, "Unsqueeze"))] = true;
      std::vector<int64_t> shape;
      int64_t src = 0;
      for (int64_t i = 0; i < rank; ++i) shape.push_back(inserted[static_cast<size_t>(i)] ? 1 : x.size(src++));
      return Tensors{x.reshape(shape)};
    };
  });
  r.add("Identity", [](const NodeContext&) -> Kernel {
    return [](const Tensors& in, const RunContext&) { return Tensors{in[0]}; };
  });
  r.add("Dropout", [](const NodeContext& ctx) -> Kernel {
    const int64_t opset = ctx.opset;
    const double attr_ratio = ctx.node.attributes.get_float("ratio", 0.5f);
    const bool want_mask = ctx.node.outputs.size() > 1 && !ctx.node.outputs[1].empty();
    return [=](const Tensors& in, const RunContext& run) {
      bool train = run.training;
      double ratio = attr_ratio;
      if (opset >= 12) {
        if (in.size() > 1 && in[1].defined()) ratio = in[1].item<double>();
        if (in.size() > 2 && in[2].defined()) train = train || in[2].item<bool>();
      }
      if (!train || ratio == 0) {
        Tensors out{in[0]};
        if (want_mask) out.push_back(at::ones(in[0].sizes(), at::kBool));
        return out;
      }
      at::Tensor mask = at::rand(in[0].sizes()) >= ratio;
      Tensors out{in[0] * mask / (1.0 - ratio)};
      if (want_mask) out.push_back(mask);
      return out;
    };
  });
  r.add("Shape", [](const NodeContext& ctx) -> Kernel {
    const bool sliced = ctx.opset >= 15;
    const int64_t start_attr = sliced ? ctx.node.attributes.get_int("start", 0) : 0;
    const bool has_end = sliced && ctx.node.attributes.has("end");
    const int64_t end_attr = has_end ? ctx.node.attributes.get_int("end", 0) : 0;
    return [=](const Tensors& in, const RunContext&) {
      const int64_t rank = in[0].dim();
      int64_t s = start_attr < 0 ? start_attr + rank : start_attr;
      int64_t e = has_end ? (end_attr < 0 ? end_attr + rank : end_attr) : rank;
      s = std::clamp<int64_t>(s, 0, rank);
      e = std::clamp<int64_t>(e, 0, rank);
      std::vector<int64_t> dims(in[0].sizes().begin() + s, in[0].sizes().begin() + std::max(s, e));
      return Tensors{at::tensor(dims, at::kLong)};
    };
  });
  r.add("Cast", [](const NodeContext& ctx) -> Kernel {
    const at::ScalarType to = scalar_type_of(static_cast<ir::DType>(ctx.node.attributes.get_int("to", 0)), ctx);
    return [to](const Tensors& in, const RunContext&) { return Tensors{in[0].to(to)}; };
  });
}

}  // namespace graft::ops
