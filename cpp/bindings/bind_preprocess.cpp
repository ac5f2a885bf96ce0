// Bindings for the preprocess area (filled in by the preprocess work; keeps module.cpp's dispatch stable).
#include "bindings.hpp"

namespace caper::bind {

void bind_preprocess(py::module_& /*m*/) {}

}  // namespace caper::bind
