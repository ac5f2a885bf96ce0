// Bindings for GPU JPEG decode (nvJPEG). Registered from bind_detect (module.cpp's dispatch list
// is fixed); the Python face is caper_edge.jpeg.
#include <cstdint>
#include <string>

#include "bindings.hpp"
#include "caper/jpeg.hpp"

namespace caper::bind {
namespace {

// A read-only view of a bytes-like object's contiguous bytes.
struct ByteView {
  py::buffer_info info;
  const uint8_t* data() const { return static_cast<const uint8_t*>(info.ptr); }
  std::size_t size() const { return static_cast<std::size_t>(info.size * info.itemsize); }
};

ByteView bytes_of(const py::buffer& data) {
  ByteView view{data.request()};
  const bool contiguous = view.info.ndim <= 1 && (view.info.ndim == 0 || view.info.strides[0] == view.info.itemsize);
  if (!contiguous || view.info.itemsize != 1) {
    throw py::value_error("data must be contiguous bytes (bytes, bytearray, memoryview or 1-D uint8 array)");
  }
  if (view.size() == 0) throw py::value_error("data is empty: expected the bytes of a JPEG file");
  return view;
}

}  // namespace

void bind_jpeg(py::module_& m) {
  m.def("nvjpeg_compiled", &jpeg::nvjpeg_compiled, "Whether this build includes the nvJPEG decoder.");
  m.def(
      "jpeg_nvjpeg_info",
      [](const py::buffer& data) {
        const ByteView view = bytes_of(data);
        jpeg::ImageInfo info;
        {
          py::gil_scoped_release release;
          info = jpeg::nvjpeg_image_info(view.data(), view.size());
        }
        return py::make_tuple(info.width, info.height, info.components);
      },
      py::arg("data"),
      R"doc(
(width, height, components) of a JPEG from its headers, via nvjpegGetImageInfo (prefer
``caper_edge.jpeg.decode_jpeg_cuda``). ValueError for data nvJPEG cannot parse; RuntimeError
when built without nvJPEG.
)doc");
  m.def(
      "jpeg_nvjpeg_decode",
      [](const py::buffer& data, std::uintptr_t out, std::size_t pitch, std::uintptr_t stream) {
        const ByteView view = bytes_of(data);
        py::gil_scoped_release release;
        jpeg::nvjpeg_decode_rgb(view.data(), view.size(), reinterpret_cast<uint8_t*>(out), pitch, stream);
      },
      py::arg("data"), py::arg("out"), py::arg("pitch"), py::arg("stream") = 0,
      R"doc(
Decode a JPEG into interleaved RGB uint8 in device memory (prefer ``caper_edge.jpeg.decode_jpeg_cuda``).

Parameters
----------
data : bytes-like
    The JPEG file's bytes, in host memory.
out : int
    Device pointer to (height, width, 3) uint8 rows, ``pitch`` bytes apart.
pitch : int
    Bytes between rows, >= 3 * width.
stream : int
    ``cudaStream_t`` as an integer (0: legacy default stream). Entropy decoding runs on the
    calling thread (GIL released); the GPU stages are queued on ``stream``, so ``out`` is ready
    in that stream's order.
)doc");
}

}  // namespace caper::bind
