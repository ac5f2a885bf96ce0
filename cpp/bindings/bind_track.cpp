// Bindings for the track area (filled in by the track work; keeps module.cpp's dispatch stable).
#include "bindings.hpp"

namespace caper::bind {

void bind_track(py::module_& /*m*/) {}

}  // namespace caper::bind
