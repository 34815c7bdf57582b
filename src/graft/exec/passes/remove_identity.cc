// Identity removal: Identity, and inference-time Dropout (whose mask output nobody reads), pass
// their input through, so their readers can read the input directly. When the output is
// protected (a graph output, a cut tensor), the input's producer writes it under the output's
// name instead, if the input itself is free to disappear.
#include "graft/exec/passes/passes.h"
#include "graft/exec/passes/rewrite.h"

namespace graft::exec::passes {

int remove_identity(ir::Graph& g, const std::set<std::string>& protect) {
  std::vector<bool> dead(g.nodes.size(), false);
  int removed = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    ir::Node& n = g.nodes[i];
    if (!n.domain.empty() || (n.op_type != "Identity" && n.op_type != "Dropout")) continue;
    if (n.inputs.empty() || n.inputs[0].empty() || n.outputs.empty()) continue;
    if (n.op_type == "Dropout") {
      // Only the data input (ratio and training_mode may be given but do not matter in inference).
      const bool mask_used = n.outputs.size() > 1 && !n.outputs[1].empty() &&
                             (!g.value(n.outputs[1]).consumers.empty() || protect.count(n.outputs[1]) ||
                              g.value(n.outputs[1]).is_graph_output);
      if (mask_used) continue;
    }
    const std::string x = n.inputs[0], y = n.outputs[0];
    if (!protect.count(y) && !g.value(y).is_graph_output) {
      replace_uses(g, y, x);
    } else {
      // Rename the producer's output x -> y, if x is an intermediate only this node reads.
      const ir::Value& xv = g.value(x);
      if (xv.producer < 0 || protect.count(x) || xv.is_graph_output || xv.consumers.size() != 1 ||
          dead[static_cast<size_t>(xv.producer)]) {
        continue;
      }
      for (auto& out : g.nodes[static_cast<size_t>(xv.producer)].outputs) {
        if (out == x) out = y;
      }
    }
    dead[i] = true;
    ++removed;
  }
  if (removed) erase_nodes(g, dead);
  return removed;
}

}  // namespace graft::exec::passes
