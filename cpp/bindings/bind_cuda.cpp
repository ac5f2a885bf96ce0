// GPU discovery and the CUDA entry points. The kernels themselves live in kernels/*.cu.
#include <string>

#include "bindings.hpp"
#include "caper/cuda_runtime_info.hpp"

namespace caper::bind {

void bind_cuda(py::module_& m) {
  m.def(
      "cuda_device_count",
      []() {
        std::string reason;
        const int n = caper::cuda::device_count(&reason);
        return py::make_tuple(n, reason);
      },
      R"doc(
Number of usable CUDA devices and, when zero, the reason.

Returns
-------
tuple[int, str]
    ``(count, reason)``; ``reason`` is empty when ``count > 0``. Never raises: a CPU-only build,
    a missing driver and an invisible device all give ``0`` with a reason.
)doc");
  m.def("cuda_device_name", &caper::cuda::device_name, py::arg("index") = 0,
        "Name and compute capability of CUDA device ``index``, or '' when unavailable.");
}

}  // namespace caper::bind
