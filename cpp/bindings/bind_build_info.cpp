// Build and runtime facts: what the module was compiled with, so benchmarks and bug reports
// can state it and tests can skip GPU cases with an honest reason.
#include "bindings.hpp"

#include <string>

#include "caper/build_info.hpp"

namespace caper::bind {

std::string shape_str(const py::array& a) {
  // std::to_string, not an ostringstream: no locale machinery on an error path.
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    s += std::to_string(a.shape(i));
    s += a.ndim() == 1 ? "," : (i + 1 < a.ndim() ? ", " : "");
  }
  return s + ")";
}

void bind_build_info(py::module_& m) {
#ifdef CAPER_EDGE_VERSION
  m.attr("__version__") = CAPER_EDGE_VERSION;
#else
  m.attr("__version__") = "0+unknown";
#endif
  m.def(
      "build_info",
      []() {
        const caper::BuildInfo b = caper::build_info();
        py::dict d;
        d["compiler"] = b.compiler;
        d["cxx_standard"] = b.cxx_standard;
        d["optimized"] = b.optimized;
        d["cuda_compiled"] = b.cuda_compiled;
        d["cuda_architectures"] = b.cuda_architectures;
        d["nvjpeg_compiled"] = b.nvjpeg_compiled;
        d["simd"] = b.simd;
        return d;
      },
      R"doc(
Facts about how this module was compiled.

Returns
-------
dict
    ``compiler`` (str), ``cxx_standard`` (int), ``optimized`` (bool), ``cuda_compiled`` (bool),
    ``cuda_architectures`` (str, e.g. ``"87;90"``), ``nvjpeg_compiled`` (bool), ``simd`` (str).
    Whether a GPU is usable at run time is a separate question: see ``cuda_device_count``.
)doc");
}

}  // namespace caper::bind
