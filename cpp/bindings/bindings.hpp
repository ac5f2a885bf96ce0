// Shared declarations for the binding translation units (pybind11 only lives in cpp/bindings).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

namespace caper::bind {

namespace py = pybind11;

void bind_build_info(py::module_& m);
void bind_preprocess(py::module_& m);
void bind_detect(py::module_& m);
void bind_track(py::module_& m);
void bind_scale(py::module_& m);
void bind_cuda(py::module_& m);

// Raise ValueError unless `a` is C-contiguous with the given dtype. `what` names the argument
// in the message, e.g. "image must be C-contiguous uint8, got float64 with strides (...)".
// dtypes compare with ==, never by identity: an unpickled array (a frame from a child process)
// carries its own uint8 dtype object, equal to numpy's but not the same one.
template <typename T>
void require_c_contiguous(const py::array& a, const char* what) {
  const bool dtype_ok = py::isinstance<py::array_t<T>>(a) && a.dtype().equal(py::dtype::of<T>());
  const bool contiguous = (a.flags() & py::array::c_style) != 0;
  if (!dtype_ok || !contiguous) {
    std::string got = std::string(py::str(a.dtype()));
    std::string msg = std::string(what) + " must be a C-contiguous " +
                      std::string(py::str(py::dtype::of<T>())) + " array, got " + got +
                      (contiguous ? "" : " (non-contiguous)");
    throw py::value_error(msg);
  }
}

// "(480, 640, 3)" style shape text for error messages.
std::string shape_str(const py::array& a);

}  // namespace caper::bind
