// graft's metadata keys (ONNX metadata_props prefixed "graft.") and typed accessors.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::ir {

inline constexpr const char* kMetaPreprocess = "graft.preprocess";  // JSON object
inline constexpr const char* kMetaLabels = "graft.labels";          // JSON list of strings
inline constexpr const char* kMetaRole = "graft.role";              // model/head/tail/hybrid/...
inline constexpr const char* kMetaTrainable = "graft.trainable";    // JSON list of initializers
inline constexpr const char* kMetaCut = "graft.cut";                // JSON object
inline constexpr const char* kMetaArchitecture = "graft.architecture";  // JSON object
// Initializers that are fixed constants of the architecture, not parameters: they are never
// trained and not counted (e.g. the unit gamma of Keras' BatchNormalization(scale=False)).
inline constexpr const char* kMetaConstants = "graft.constants";    // JSON list of initializers
// Non-trainable parameters a node's layer has beyond its operands (Keras' Normalization keeps a
// sample count no computation reads): JSON object, node name -> count.
inline constexpr const char* kMetaExtraParams = "graft.extra_params";

// A JSON list of strings stored under `key`; empty if absent. Error if it is not such a list.
std::vector<std::string> metadata_string_list(const Graph& graph, const char* key);
void set_metadata_string_list(Graph& graph, const char* key, const std::vector<std::string>& list);

// The initializers named in graft.constants.
std::set<std::string> constant_initializers(const Graph& graph);

}  // namespace graft::ir
