// Bindings for the scale area (filled in by the scale work; keeps module.cpp's dispatch stable).
#include "bindings.hpp"

namespace caper::bind {

void bind_scale(py::module_& /*m*/) {}

}  // namespace caper::bind
