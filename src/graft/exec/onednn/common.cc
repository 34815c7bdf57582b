// Helpers shared by the oneDNN program's primitive families.
#include <ATen/ATen.h>
#include <sys/mman.h>

#include <cstdint>
#include <new>
#include <tuple>

#include "graft/exec/onednn/impl.h"
#include "graft/ops/kernel.h"

namespace graft::exec::onednn {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

at::Tensor huge_page_bytes(size_t bytes) {
  // Fresh pages from mmap (memory malloc reuses may already be backed by 4 KiB pages, which
  // madvise does not replace), 2 MiB-aligned by mapping one huge page more and trimming.
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t size = std::max<size_t>((bytes + kHugePage - 1) / kHugePage, 1) * kHugePage;
  void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  munmap(reinterpret_cast<void*>(aligned + size), start + kHugePage - aligned);  // never empty
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, size, MADV_HUGEPAGE);  // a hint: without transparent huge pages, plain ones
  return at::from_blob(p, {static_cast<int64_t>(size)}, [size](void* q) { munmap(q, size); }, at::kByte);
}

memory::dims to_dims(const std::vector<int64_t>& v) { return memory::dims(v.begin(), v.end()); }

dnnl::primitive_attr scratchpad_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

std::string impl_name(const dnnl::primitive& prim) {
  const char* info = nullptr;
  if (dnnl_primitive_desc_query(prim.get_primitive_desc(), dnnl_query_impl_info_str, 0, &info) !=
          dnnl_success || info == nullptr) {
    return "onednn";
  }
  return info;
}

std::vector<int64_t> to_sizes(const memory::desc& md) {
  const memory::dims d = md.dims();
  return std::vector<int64_t>(d.begin(), d.end());
}

memory::desc plain_desc(const std::vector<int64_t>& sizes) {
  static const Tag tags[] = {Tag::a, Tag::a, Tag::ab, Tag::abc, Tag::abcd, Tag::abcde};
  if (sizes.empty() || sizes.size() > 5) {
    throw Error("oneDNN path: no plain layout for rank " + std::to_string(sizes.size()),
                ErrorKind::kInternal);
  }
  return memory::desc(to_dims(sizes), DataType::f32, tags[sizes.size()]);
}

std::vector<int64_t> ints_or(const ir::Node& n, const char* name, std::vector<int64_t> fallback) {
  return n.attributes.has(name) ? n.attributes.get_ints(name) : fallback;
}

// Begin and end pads of a 2-D window op, ONNX's auto_pad resolved for the input's sizes.
bool window_pads(const ir::Node& n, const std::vector<int64_t>& in, const std::vector<int64_t>& kernel,
                 const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                 memory::dims* begin, memory::dims* end) {
  const std::string auto_pad = n.attributes.get_string("auto_pad", "NOTSET");
  const auto pads = ints_or(n, "pads", {0, 0, 0, 0});
  if (pads.size() != 4) return false;
  begin->assign(2, 0);
  end->assign(2, 0);
  for (size_t i = 0; i < 2; ++i) {
    const int64_t size = in[i + 2];
    const int64_t extent = (kernel[i] - 1) * dilations[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      std::tie((*begin)[i], (*end)[i]) = ops::same_pads(size, extent, strides[i], auto_pad == "SAME_UPPER");
    } else if (auto_pad == "NOTSET") {
      (*begin)[i] = pads[i];
      (*end)[i] = pads[i + 2];
    } else if (auto_pad != "VALID") {
      return false;
    }
  }
  return true;
}

std::optional<Activation> activation_of(const std::string& op, const std::vector<float>& p) {
  Activation a;
  if (op == "Relu") {
    a.algorithm = dnnl::algorithm::eltwise_relu;
  } else if (op == "LeakyRelu" && p.size() == 1) {
    a.algorithm = dnnl::algorithm::eltwise_relu;
    a.alpha = p[0];
  } else if (op == "Clip" && p.size() == 2) {
    a.algorithm = dnnl::algorithm::eltwise_clip_v2;
    a.alpha = p[0];
    a.beta = p[1];
  } else if (op == "Sigmoid") {
    a.algorithm = dnnl::algorithm::eltwise_logistic;
  } else if (op == "Tanh") {
    a.algorithm = dnnl::algorithm::eltwise_tanh;
  } else if (op == "Silu") {
    a.algorithm = dnnl::algorithm::eltwise_swish;
    a.alpha = 1.f;
  } else if (op == "Gelu") {
    a.algorithm = dnnl::algorithm::eltwise_gelu_erf;
  } else if (op == "GeluTanh") {
    a.algorithm = dnnl::algorithm::eltwise_gelu_tanh;
  } else if (op == "HardSwish") {
    a.algorithm = dnnl::algorithm::eltwise_hardswish;
  } else if (op == "HardSigmoid" && p.size() == 2) {
    a.algorithm = dnnl::algorithm::eltwise_linear;
    a.alpha = p[0];
    a.beta = p[1];
    a.hard_sigmoid = true;
  } else {
    return std::nullopt;
  }
  return a;
}

void append_activation(dnnl::post_ops& po, const Activation& a) {
  po.append_eltwise(1.f, a.algorithm, a.alpha, a.beta);
  if (a.hard_sigmoid) po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip_v2, 0.f, 1.f);
}

std::optional<Epilogue> epilogue_of(const Activation& a) {
  Epilogue e;
  if (a.hard_sigmoid) return std::nullopt;
  switch (a.algorithm) {
    case dnnl::algorithm::eltwise_relu:
      e.kind = Epilogue::kRelu;
      e.slope = a.alpha;
      return e;
    case dnnl::algorithm::eltwise_clip:
    case dnnl::algorithm::eltwise_clip_v2:
      e.lo = a.alpha;
      e.hi = a.beta;
      return e;
    case dnnl::algorithm::eltwise_hardswish:
      e.kind = Epilogue::kHardSwish;
      return e;
    case dnnl::algorithm::eltwise_swish:
      if (a.alpha != 1.f) return std::nullopt;
      e.kind = Epilogue::kSilu;
      return e;
    default:
      return std::nullopt;
  }
}


memory::desc broadcast_desc(const memory::desc& full, const std::vector<int64_t>& full_sizes,
                            const std::vector<int64_t>& sizes) {
  for (const Tag tag : {Tag::nhwc, Tag::nChw16c, Tag::nChw8c}) {
    if (full == memory::desc(to_dims(full_sizes), DataType::f32, tag)) {
      return memory::desc(to_dims(sizes), DataType::f32, tag);
    }
  }
  return plain_desc(sizes);
}

std::shared_ptr<WeightCache> make_weight_cache() { return std::make_shared<WeightCache>(); }

}  // namespace graft::exec::onednn
