// Small statistics shared by the commands that time things (bench, infer, profile).
#pragma once

#include <vector>

namespace graft {

// The q-quantile (q in [0, 1]) of `values`, interpolating linearly between the two nearest
// ranks (NumPy's default); 0 for no values.
double percentile(std::vector<double> values, double q);

}  // namespace graft
