// Internal to zoo: the metadata every zoo model records.
#pragma once

#include <nlohmann/json.hpp>

#include "graft/ir/graph.h"
#include "graft/ir/metadata.h"

namespace graft::zoo {

// Keras "tf" preprocessing: pixels in [0, 255] map to [-1, 1] ((x / 255 - 0.5) / 0.5).
inline void record_metadata(ir::Graph& g, int64_t size, int64_t channels,
                            const nlohmann::json& architecture) {
  nlohmann::json p;
  p["size"] = {size, size};
  p["channels"] = channels;
  p["layout"] = "NCHW";
  p["resize"] = "bilinear";
  p["scale"] = 1.0 / 255.0;
  p["mean"] = std::vector<double>(static_cast<size_t>(channels), 0.5);
  p["std"] = std::vector<double>(static_cast<size_t>(channels), 0.5);
  g.set_metadata(ir::kMetaPreprocess, p.dump());
  g.set_metadata(ir::kMetaRole, "model");
  g.set_metadata(ir::kMetaArchitecture, architecture.dump());
}

}  // namespace graft::zoo
