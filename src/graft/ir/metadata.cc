#include "graft/ir/metadata.h"

#include <nlohmann/json.hpp>

#include "graft/core/error.h"

namespace graft::ir {

std::vector<std::string> metadata_string_list(const Graph& graph, const char* key) {
  auto text = graph.get_metadata(key);
  if (!text) return {};
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) throw Error(std::string("metadata '") + key + "' is not a JSON list");
  std::vector<std::string> out;
  for (const auto& e : j) {
    if (!e.is_string()) throw Error(std::string("metadata '") + key + "' holds a non-string");
    out.push_back(e.get<std::string>());
  }
  return out;
}

void set_metadata_string_list(Graph& graph, const char* key, const std::vector<std::string>& list) {
  graph.set_metadata(key, nlohmann::json(list).dump());
}

std::set<std::string> constant_initializers(const Graph& graph) {
  auto list = metadata_string_list(graph, kMetaConstants);
  return {list.begin(), list.end()};
}

}  // namespace graft::ir
