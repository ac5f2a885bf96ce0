// Bindings for the preprocess area: the fused letterbox (CPU, and CUDA when built with it) and
// the depth helpers. Arrays cross only C-contiguous with checked dtype and shape; the Python
// wrapper (caper_edge/preprocess.py) validates first with friendlier messages, these checks
// keep the raw entry points safe on their own. Every call that touches pixels releases the GIL.
#include <pybind11/stl.h>

#include <array>
#include <string>

#include "bindings.hpp"
#include "caper/preprocess.hpp"
#if defined(CAPER_HAVE_CUDA)
#include "caper/preprocess_cuda.hpp"
#endif

namespace caper::bind {

namespace {

namespace pp = caper::preprocess;

pp::PixelFormat parse_format(int fmt) {
  if (fmt < 0 || fmt > 3) throw py::value_error("fmt code must be 0..3 (rgb8, bgr8, yuyv, gray), got " + std::to_string(fmt));
  return static_cast<pp::PixelFormat>(fmt);
}

pp::ImageView image_view(const py::array& image, pp::PixelFormat fmt) {
  require_c_contiguous<uint8_t>(image, "image");
  const int channels = fmt == pp::PixelFormat::kGray ? 1 : (fmt == pp::PixelFormat::kYUYV ? 2 : 3);
  const bool shape_ok = fmt == pp::PixelFormat::kGray ? image.ndim() == 2
                                                      : (image.ndim() == 3 && image.shape(2) == channels);
  if (!shape_ok) {
    throw py::value_error("image must be " + std::string(channels == 1 ? "(H, W)" : "(H, W, " + std::to_string(channels) + ")") +
                          " for this format, got shape " + shape_str(image));
  }
  return pp::ImageView{static_cast<const uint8_t*>(image.data()), static_cast<int>(image.shape(0)),
                       static_cast<int>(image.shape(1)), static_cast<std::ptrdiff_t>(image.shape(1)) * channels, fmt};
}

pp::OutType out_type(const py::array& out) {
  const bool contiguous = (out.flags() & py::array::c_style) != 0;
  const bool writeable = out.writeable();
  pp::OutType t;
  if (out.dtype().equal(py::dtype::of<float>())) {
    t = pp::OutType::kFloat32;
  } else if (out.dtype().equal(py::dtype("float16"))) {
    t = pp::OutType::kFloat16;
  } else {
    throw py::value_error("out must be float32 or float16, got " + std::string(py::str(out.dtype())));
  }
  if (!contiguous || !writeable || out.ndim() != 3 || out.shape(0) != 3) {
    throw py::value_error("out must be a writeable C-contiguous (3, H, W) array, got shape " + shape_str(out) +
                          (contiguous ? "" : " (non-contiguous)") + (writeable ? "" : " (read-only)"));
  }
  return t;
}

py::tuple geometry_tuple(const pp::Geometry& g) {
  return py::make_tuple(g.r, g.pad_x, g.pad_y, g.new_h, g.new_w);
}

using Triple = std::array<double, 3>;

// Shared by the fast and the reference CPU entry points.
template <void (*Fn)(const pp::ImageView&, const pp::Geometry&, const pp::Affine&, uint8_t, pp::OutType, void*)>
py::tuple letterbox_cpu(const py::array& image, int fmt, py::array& out, double scale, const Triple& mean,
                        const Triple& std, int pad_value) {
  const pp::PixelFormat f = parse_format(fmt);
  const pp::ImageView view = image_view(image, f);
  const pp::OutType type = out_type(out);
  if (pad_value < 0 || pad_value > 255) throw py::value_error("pad_value must be in 0..255, got " + std::to_string(pad_value));
  const pp::Geometry g = pp::letterbox_geometry(view.height, view.width, static_cast<int>(out.shape(1)),
                                                static_cast<int>(out.shape(2)));
  const pp::Affine a = pp::make_affine(scale, mean.data(), std.data());
  void* dst = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    Fn(view, g, a, static_cast<uint8_t>(pad_value), type, dst);
  }
  return geometry_tuple(g);
}

constexpr const char* kLetterboxDoc = R"doc(
Fused letterbox of a host image into preallocated planes (raw entry point).

Prefer ``caper_edge.preprocess.letterbox``, which validates and allocates.

Parameters
----------
image : numpy.ndarray
    C-contiguous uint8: (H, W, 3) for fmt 0 (rgb8) and 1 (bgr8), (H, W, 2) for fmt 2 (yuyv,
    even W), (H, W) for fmt 3 (gray).
fmt : int
    0 rgb8, 1 bgr8, 2 yuyv, 3 gray.
out : numpy.ndarray
    Writeable C-contiguous (3, OH, OW) float32 or float16; receives R, G, B planes, each value
    ((pixel * scale) - mean[c]) / std[c]. Written in place, every element exactly once.
scale : float
mean, std : tuple of 3 floats
    Per output channel (R, G, B), in scaled units; std must be non-zero.
pad_value : int
    Border grey level, 0..255, before scaling.

Returns
-------
tuple
    (r, pad_x, pad_y, new_h, new_w) of the contract geometry.

Notes
-----
Releases the GIL. Allocates only row-sized scratch (per thread, reused).
)doc";

void bind_cpu(py::module_& m) {
  m.def("letterbox_geometry",
        [](int src_h, int src_w, int dst_h, int dst_w) {
          return geometry_tuple(pp::letterbox_geometry(src_h, src_w, dst_h, dst_w));
        },
        py::arg("src_h"), py::arg("src_w"), py::arg("dst_h"), py::arg("dst_w"),
        R"doc(
Contract letterbox geometry of a src_h x src_w image in a dst_h x dst_w output.

Returns
-------
tuple
    (r, pad_x, pad_y, new_h, new_w): r = min(dst_h/src_h, dst_w/src_w); new sizes rounded half
    to even and clamped to [1, dst]; pads = (dst - new) // 2. Raises ValueError unless every
    side is in 1..32767.
)doc");
  m.def("letterbox_into", &letterbox_cpu<&pp::letterbox>, py::arg("image"), py::arg("fmt"), py::arg("out"),
        py::arg("scale"), py::arg("mean"), py::arg("std"), py::arg("pad_value"), kLetterboxDoc);
  m.def("letterbox_reference_into", &letterbox_cpu<&pp::letterbox_reference>, py::arg("image"), py::arg("fmt"),
        py::arg("out"), py::arg("scale"), py::arg("mean"), py::arg("std"), py::arg("pad_value"),
        "Same as letterbox_into, computed one pixel at a time with letterbox_pixel(), the function\n"
        "the CUDA kernel runs per thread. Slow; for tests that check the fast loops against it.");

  m.def(
      "depth_to_meters_into",
      [](const py::array& raw, py::array& out, double depth_scale, double invalid_value) {
        require_c_contiguous<uint16_t>(raw, "depth");
        require_c_contiguous<float>(out, "out");
        if (!out.writeable()) throw py::value_error("out must be writeable, got a read-only array");
        if (out.size() != raw.size()) {
          throw py::value_error("out must have the depth image's " + std::to_string(raw.size()) + " elements, got " +
                                std::to_string(out.size()));
        }
        const auto* src = static_cast<const uint16_t*>(raw.data());
        auto* dst = static_cast<float*>(out.mutable_data());
        const auto n = static_cast<std::size_t>(raw.size());
        py::gil_scoped_release nogil;
        pp::depth_to_meters(src, n, static_cast<float>(depth_scale), static_cast<float>(invalid_value), dst);
      },
      py::arg("depth"), py::arg("out"), py::arg("depth_scale"), py::arg("invalid_value"),
      R"doc(
out[i] = depth[i] * depth_scale (metres) where depth[i] != 0, else invalid_value.

depth: C-contiguous uint16 (any shape); out: writeable C-contiguous float32 of the same size,
written in place. Releases the GIL.
)doc");

  m.def(
      "median_depth",
      [](const py::array& depth, const py::array& boxes, double depth_scale, double inner_fraction) {
        require_c_contiguous<uint16_t>(depth, "depth");
        require_c_contiguous<float>(boxes, "xyxy");
        if (depth.ndim() != 2) throw py::value_error("depth must be (H, W), got shape " + shape_str(depth));
        if (boxes.ndim() != 2 || boxes.shape(1) != 4) {
          throw py::value_error("xyxy must be (n, 4) float32, got shape " + shape_str(boxes));
        }
        const auto n = static_cast<std::size_t>(boxes.shape(0));
        py::array_t<float> out(static_cast<py::ssize_t>(n));
        const auto* d = static_cast<const uint16_t*>(depth.data());
        const auto* b = static_cast<const float*>(boxes.data());
        float* o = out.mutable_data();
        const int h = static_cast<int>(depth.shape(0));
        const int w = static_cast<int>(depth.shape(1));
        {
          py::gil_scoped_release nogil;
          pp::median_depth(d, h, w, b, n, static_cast<float>(depth_scale), static_cast<float>(inner_fraction), o);
        }
        return out;
      },
      py::arg("depth"), py::arg("xyxy"), py::arg("depth_scale"), py::arg("inner_fraction"),
      R"doc(
Median of the non-zero depth values in each box, in metres; NaN where a box holds none.

Parameters
----------
depth : numpy.ndarray
    (H, W) uint16 C-contiguous raw depth (0 = no measurement).
xyxy : numpy.ndarray
    (n, 4) float32 C-contiguous boxes in pixels; pixel (u, v) covers [u, u+1) x [v, v+1).
depth_scale : float
    Metres per raw unit (0.001 for millimetres).
inner_fraction : float
    Shrink each box about its centre to this fraction of its width and height first (1: whole box).

Returns
-------
numpy.ndarray
    (n,) float32, numpy.median semantics (mean of the two middle values for an even count).
    Releases the GIL; one small per-thread scratch buffer.
)doc");
}

#if defined(CAPER_HAVE_CUDA)
void bind_gpu(py::module_& m) {
  m.def(
      "letterbox_cuda_into",
      [](std::uintptr_t src, int src_h, int src_w, int fmt, std::uintptr_t out, int dst_h, int dst_w, bool half,
         double scale, const Triple& mean, const Triple& std, int pad_value, std::uintptr_t stream,
         const std::vector<std::uintptr_t>& wait_streams) {
        const pp::PixelFormat f = parse_format(fmt);
        if (pad_value < 0 || pad_value > 255) throw py::value_error("pad_value must be in 0..255, got " + std::to_string(pad_value));
        if (f == pp::PixelFormat::kYUYV && src_w % 2 != 0) {
          throw py::value_error("yuyv image width must be even, got " + std::to_string(src_w));
        }
        const pp::Geometry g = pp::letterbox_geometry(src_h, src_w, dst_h, dst_w);
        const pp::Affine a = pp::make_affine(scale, mean.data(), std.data());
        const auto* src_ptr = reinterpret_cast<const uint8_t*>(src);
        void* out_ptr = reinterpret_cast<void*>(out);
        {
          py::gil_scoped_release nogil;
          const int device = pp::cuda::pointer_device(src_ptr, "image");
          if (pp::cuda::pointer_device(out_ptr, "out") != device) {
            throw std::invalid_argument("image and out must be on the same CUDA device");
          }
          for (const std::uintptr_t producer : wait_streams) pp::cuda::stream_wait(producer, stream, device);
          const long long stride = static_cast<long long>(src_w) * pp::bytes_per_pixel(f);
          pp::cuda::letterbox(src_ptr, stride, f, g, a, static_cast<uint8_t>(pad_value),
                              half ? pp::OutType::kFloat16 : pp::OutType::kFloat32, out_ptr, stream, device);
        }
        return geometry_tuple(g);
      },
      py::arg("src"), py::arg("src_h"), py::arg("src_w"), py::arg("fmt"), py::arg("out"), py::arg("dst_h"),
      py::arg("dst_w"), py::arg("half"), py::arg("scale"), py::arg("mean"), py::arg("std"), py::arg("pad_value"),
      py::arg("stream"), py::arg("wait_streams"),
      R"doc(
Enqueue the letterbox of a device image on a CUDA stream (raw entry point).

Prefer ``caper_edge.preprocess.letterbox_cuda``, which reads ``__cuda_array_interface__``.

Parameters
----------
src : int
    Device pointer to a C-contiguous packed uint8 image, src_h x src_w pixels of format fmt.
out : int
    Device pointer to C-contiguous (3, dst_h, dst_w) planes, float16 when ``half`` else float32.
stream : int
    cudaStream_t to launch on (0 legacy default, 1 cudaStreamLegacy, 2 cudaStreamPerThread).
wait_streams : list of int
    Producer streams of the inputs: ``stream`` first waits for each of them through an event.

Returns
-------
tuple
    (r, pad_x, pad_y, new_h, new_w). Returns once the kernel is queued; the output is ready
    when ``stream`` reaches it. Releases the GIL. Raises ValueError for host pointers,
    RuntimeError with CUDA's message when a CUDA call fails.
)doc");
}
#endif

}  // namespace

void bind_preprocess(py::module_& m) {
  bind_cpu(m);
#if defined(CAPER_HAVE_CUDA)
  bind_gpu(m);
#endif
}

}  // namespace caper::bind
