// Dead-node removal: a node none of whose outputs is read, is a graph output or is protected
// does nothing for the result. Removing one can make its producers dead in turn, so the graph
// is walked from the back.
#include "graft/exec/passes/passes.h"
#include "graft/exec/passes/rewrite.h"

namespace graft::exec::passes {

int remove_dead(ir::Graph& g, const std::set<std::string>& protect) {
  std::vector<bool> dead(g.nodes.size(), false);
  std::map<std::string, int> readers;  // live readers per value
  for (const auto& n : g.nodes) {
    for (const auto& in : n.inputs) ++readers[in];
  }
  int removed = 0;
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const ir::Node& n = g.nodes[i];
    bool used = false;
    for (const auto& out : n.outputs) {
      used = used || (!out.empty() && (readers[out] > 0 || protect.count(out) || g.value(out).is_graph_output));
    }
    if (used) continue;
    dead[i] = true;
    ++removed;
    for (const auto& in : n.inputs) --readers[in];
  }
  const size_t initializers = g.initializers.size();
  erase_nodes(g, dead);  // also drops initializers nothing reads
  return removed + static_cast<int>(initializers - g.initializers.size());
}

}  // namespace graft::exec::passes
