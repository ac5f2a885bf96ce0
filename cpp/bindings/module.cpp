// caper_edge._core: the compiled half of caper_edge. This file only dispatches to one
// bind_<area>.cpp per area; the algorithms live in cpp/src and cpp/include/caper, which never
// see pybind11.
#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "caper_edge native core: preprocessing, decode, tracking, weight events, CUDA kernels";
  caper::bind::bind_build_info(m);
  caper::bind::bind_preprocess(m);
  caper::bind::bind_detect(m);
  caper::bind::bind_track(m);
  caper::bind::bind_scale(m);
  caper::bind::bind_cuda(m);
}
