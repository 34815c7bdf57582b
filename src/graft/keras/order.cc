// Keras' model.layers order (its functional graph mapping), reproduced for the importer and the
// zoo: depth from the outputs, ties by first visit of a depth-first walk from the outputs.
#include <algorithm>
#include <functional>
#include <map>

#include "graft/core/error.h"
#include "graft/ir/summary.h"
#include "graft/keras/keras.h"

namespace graft::keras {

std::vector<int> model_layers_order(const std::vector<std::vector<int>>& inputs,
                                    const std::vector<int>& outputs) {
  const int n = static_cast<int>(inputs.size());
  std::vector<int> visit(n, -1), post;
  std::vector<char> state(n, 0);  // 0 new, 1 in progress, 2 done
  int next = 0;
  // Iterative depth-first walk (a deep model must not overflow the stack).
  for (int out : outputs) {
    std::vector<std::pair<int, size_t>> stack{{out, 0}};
    while (!stack.empty()) {
      auto& [layer, arg] = stack.back();
      if (arg == 0) {
        if (state[layer] == 2) {
          stack.pop_back();
          continue;
        }
        if (visit[layer] < 0) visit[layer] = next++;
        state[layer] = 1;
      }
      if (arg < inputs[layer].size()) {
        const int in = inputs[layer][arg++];
        if (state[in] == 1) throw Error("the model's layers form a cycle");
        if (state[in] == 0) stack.push_back({in, 0});
        continue;
      }
      state[layer] = 2;
      post.push_back(layer);
      stack.pop_back();
    }
  }
  std::vector<int> depth(n, 0);
  for (auto it = post.rbegin(); it != post.rend(); ++it) {
    for (int in : inputs[*it]) depth[in] = std::max(depth[in], depth[*it] + 1);
  }
  std::vector<int> order = post;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return depth[a] != depth[b] ? depth[a] > depth[b] : visit[a] < visit[b];
  });
  return order;
}

}  // namespace graft::keras

namespace graft::keras {

void order_as_keras(ir::Graph& g) {
  g.reindex();
  const std::vector<int> owner = ir::layer_nodes(g);
  // Layers: one per graph input, then one per layer node, in node order.
  std::map<int, int> layer_of_owner;
  std::map<std::string, int> layer_of_input;
  std::vector<std::vector<int>> members;  // node indices of each layer
  for (const auto& in : g.inputs) {
    layer_of_input[in] = static_cast<int>(members.size());
    members.emplace_back();
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    auto [it, fresh] = layer_of_owner.emplace(owner[i], static_cast<int>(members.size()));
    if (fresh) members.emplace_back();
    members[static_cast<size_t>(it->second)].push_back(static_cast<int>(i));
  }
  auto layer_producing = [&](const std::string& t) -> int {
    const ir::Value& v = g.value(t);
    if (v.producer >= 0) return layer_of_owner.at(owner[static_cast<size_t>(v.producer)]);
    auto in = layer_of_input.find(t);
    return in == layer_of_input.end() ? -1 : in->second;
  };
  std::vector<std::vector<int>> inputs(members.size());
  for (size_t l = 0; l < members.size(); ++l) {
    for (int n : members[l]) {
      for (const auto& t : g.nodes[static_cast<size_t>(n)].inputs) {
        if (t.empty() || g.initializers.count(t)) continue;
        const int from = layer_producing(t);
        if (from >= 0 && from != static_cast<int>(l) &&
            std::find(inputs[l].begin(), inputs[l].end(), from) == inputs[l].end()) {
          inputs[l].push_back(from);
        }
      }
    }
  }
  std::vector<int> outputs;
  for (const auto& t : g.outputs) outputs.push_back(layer_producing(t));
  std::vector<ir::Node> nodes;
  for (int l : model_layers_order(inputs, outputs)) {
    for (int n : members[static_cast<size_t>(l)]) nodes.push_back(std::move(g.nodes[static_cast<size_t>(n)]));
  }
  if (nodes.size() != g.nodes.size()) {
    throw Error("order_as_keras: some nodes do not lead to an output", ErrorKind::kInternal);
  }
  g.nodes = std::move(nodes);
  g.reindex();
}

}  // namespace graft::keras
