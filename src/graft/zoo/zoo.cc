#include "graft/zoo/zoo.h"

namespace graft::zoo {

std::vector<std::string> model_names() { return {"mobilenet_v1", "inception_resnet_v2"}; }

}  // namespace graft::zoo
