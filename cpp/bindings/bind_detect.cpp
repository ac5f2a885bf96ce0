// Bindings for the detect area (filled in by the detect work; keeps module.cpp's dispatch stable).
#include "bindings.hpp"

namespace caper::bind {

void bind_detect(py::module_& /*m*/) {}

}  // namespace caper::bind
