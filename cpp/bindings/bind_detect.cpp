// Bindings for the detect area: YOLO decode + NMS on host arrays, its CUDA threshold-and-compact
// twin on device pointers, and plain greedy NMS. Arrays crossing here are C-contiguous with
// checked shape and dtype; every call releases the GIL while it works.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "caper/detect.hpp"

namespace caper::bind {
namespace {

bool is_float16(const py::array& a) { return a.dtype().kind() == 'f' && a.dtype().itemsize() == 2; }
bool is_float32(const py::array& a) { return a.dtype().equal(py::dtype::of<float>()); }

void check_params(const detect::DecodeParams& p) {
  if (!(p.conf_threshold >= 0.0f && p.conf_threshold <= 1.0f)) {
    throw py::value_error("conf_threshold must be in [0, 1], got " + std::to_string(p.conf_threshold));
  }
  if (!(p.iou_threshold >= 0.0f && p.iou_threshold <= 1.0f)) {
    throw py::value_error("iou_threshold must be in [0, 1], got " + std::to_string(p.iou_threshold));
  }
  if (p.max_detections < 1) {
    throw py::value_error("max_detections must be >= 1, got " + std::to_string(p.max_detections));
  }
}

detect::DecodeParams make_params(float conf, float iou, int64_t max_detections, bool agnostic) {
  detect::DecodeParams p;
  p.conf_threshold = conf;
  p.iou_threshold = iou;
  p.max_detections = max_detections;
  p.class_agnostic = agnostic;
  check_params(p);
  return p;
}

// (xyxy (K, 4) float32, score (K,) float32, class_id (K,) int32), copied out of `list` (K is small:
// at most max_detections).
py::tuple to_arrays(const detect::DetectionList& list) {
  const auto k = static_cast<py::ssize_t>(list.size());
  py::array_t<float> xyxy({k, py::ssize_t{4}});
  py::array_t<float> score(k);
  py::array_t<int32_t> class_id(k);
  if (k > 0) {
    std::memcpy(xyxy.mutable_data(), list.xyxy.data(), list.xyxy.size() * sizeof(float));
    std::memcpy(score.mutable_data(), list.score.data(), list.score.size() * sizeof(float));
    std::memcpy(class_id.mutable_data(), list.class_id.data(), list.class_id.size() * sizeof(int32_t));
  }
  return py::make_tuple(xyxy, score, class_id);
}

py::tuple decode(const py::array& raw, float conf, float iou, int64_t max_detections, bool agnostic) {
  const detect::DecodeParams params = make_params(conf, iou, max_detections, agnostic);
  if (!(is_float32(raw) || is_float16(raw)) || (raw.flags() & py::array::c_style) == 0) {
    throw py::value_error("raw must be a C-contiguous float32 or float16 array, got " +
                          std::string(py::str(raw.dtype())) +
                          ((raw.flags() & py::array::c_style) ? "" : " (non-contiguous)"));
  }
  if (raw.ndim() != 2 || raw.shape(0) < 5) {
    throw py::value_error("raw must be (4 + nc, N) with nc >= 1, got shape " + shape_str(raw));
  }
  const int64_t rows = raw.shape(0), n = raw.shape(1);
  detect::DetectionList list;
  {
    py::gil_scoped_release release;
    if (is_float16(raw)) {
      detect::decode(static_cast<const uint16_t*>(raw.data()), rows, n, params, &list);
    } else {
      detect::decode(static_cast<const float*>(raw.data()), rows, n, params, &list);
    }
  }
  return to_arrays(list);
}

py::tuple decode_cuda(std::uintptr_t data, const std::string& dtype, int64_t rows, int64_t n, float conf, float iou,
                      int64_t max_detections, bool agnostic, std::uintptr_t stream, std::uintptr_t producer_stream) {
  const detect::DecodeParams params = make_params(conf, iou, max_detections, agnostic);
  if (dtype != "float32" && dtype != "float16") {
    throw py::value_error("raw must be float32 or float16, got " + dtype);
  }
  if (rows < 5 || n < 0) {
    throw py::value_error("raw must be (4 + nc, N) with nc >= 1, got (" + std::to_string(rows) + ", " +
                          std::to_string(n) + ")");
  }
  detect::DetectionList list;
  {
    py::gil_scoped_release release;
    std::vector<detect::Candidate> candidates;
    if (n > 0) {
      detect::threshold_compact_cuda(reinterpret_cast<const void*>(data), dtype == "float16", rows, n,
                                     params.conf_threshold, stream, producer_stream, &candidates);
    }
    detect::nms_candidates(&candidates, params, &list);
  }
  return to_arrays(list);
}

py::array_t<int64_t> nms(const py::array& xyxy, const py::array& score, float iou, const py::object& class_id,
                         int64_t max_detections) {
  require_c_contiguous<float>(xyxy, "xyxy");
  require_c_contiguous<float>(score, "score");
  if (xyxy.ndim() != 2 || xyxy.shape(1) != 4) {
    throw py::value_error("xyxy must be (n, 4), got shape " + shape_str(xyxy));
  }
  const int64_t n = xyxy.shape(0);
  if (score.ndim() != 1 || score.shape(0) != n) {
    throw py::value_error("score must be (" + std::to_string(n) + ",) to match xyxy, got shape " + shape_str(score));
  }
  if (!(iou >= 0.0f && iou <= 1.0f)) throw py::value_error("iou_threshold must be in [0, 1], got " + std::to_string(iou));
  if (max_detections < 1) throw py::value_error("max_detections must be >= 1, got " + std::to_string(max_detections));
  const int32_t* class_ptr = nullptr;
  py::array classes;
  if (!class_id.is_none()) {
    classes = py::reinterpret_borrow<py::array>(class_id);
    require_c_contiguous<int32_t>(classes, "class_id");
    if (classes.ndim() != 1 || classes.shape(0) != n) {
      throw py::value_error("class_id must be (" + std::to_string(n) + ",) to match xyxy, got shape " +
                            shape_str(classes));
    }
    class_ptr = static_cast<const int32_t*>(classes.data());
  }
  std::vector<int64_t> kept;
  {
    py::gil_scoped_release release;
    kept = detect::nms(static_cast<const float*>(xyxy.data()), static_cast<const float*>(score.data()), class_ptr, n,
                       iou, max_detections);
  }
  py::array_t<int64_t> out(static_cast<py::ssize_t>(kept.size()));
  if (!kept.empty()) std::memcpy(out.mutable_data(), kept.data(), kept.size() * sizeof(int64_t));
  return out;
}

}  // namespace

void bind_jpeg(py::module_& m);  // bind_jpeg.cpp: module.cpp's dispatch list is fixed, so it rides here

void bind_detect(py::module_& m) {
  bind_jpeg(m);
  m.def("detect_decode", &decode, py::arg("raw"), py::arg("conf_threshold"), py::arg("iou_threshold"),
        py::arg("max_detections"), py::arg("class_agnostic"),
        R"doc(
Decode a YOLOv8/YOLO11 head and run greedy NMS (prefer ``caper_edge.detect.decode``).

Parameters
----------
raw : numpy.ndarray
    (4 + nc, N) C-contiguous float32 or float16: rows cx, cy, w, h (pixels of the network input),
    then nc class scores. Read in place, never copied; float16 is widened on the fly.
conf_threshold : float
    A candidate survives when its best class score is > this (strictly), in [0, 1].
iou_threshold : float
    A box is suppressed when its IoU with a kept box is > this, in [0, 1].
max_detections : int
    At most this many boxes are returned (>= 1).
class_agnostic : bool
    False: NMS within each class; True: across classes.

Returns
-------
tuple
    ``(xyxy, score, class_id)``: (K, 4) float32 corners, (K,) float32, (K,) int32, sorted by
    descending score (ties: lower column of ``raw`` first). Fresh arrays of K rows.

Notes
-----
Runs without the GIL. Same kept set as ``cv2.dnn.NMSBoxes`` applied per class.
)doc");
  m.def("detect_decode_cuda", &decode_cuda, py::arg("data"), py::arg("dtype"), py::arg("rows"), py::arg("n"),
        py::arg("conf_threshold"), py::arg("iou_threshold"), py::arg("max_detections"), py::arg("class_agnostic"),
        py::arg("stream") = 0, py::arg("producer_stream") = 0,
        R"doc(
Decode a YOLO head that lives in GPU memory (prefer ``caper_edge.detect.decode_cuda``).

Parameters
----------
data : int
    Device pointer to a C-contiguous (rows, n) array.
dtype : str
    ``"float32"`` or ``"float16"``.
rows, n : int
    Shape: rows = 4 + nc (>= 5), n candidates.
conf_threshold, iou_threshold, max_detections, class_agnostic
    As for ``detect_decode``.
stream : int
    ``cudaStream_t`` as an integer (0: the legacy default stream). The threshold-and-compact
    kernel and the copies of the survivors run on it, after the work already queued there.
producer_stream : int
    The stream the array was written on, when known and different: ``stream`` waits for it
    through an event first. 0: no extra wait.

Returns
-------
tuple
    ``(xyxy, score, class_id)`` host arrays, as ``detect_decode``.

Notes
-----
Blocks the calling thread (GIL released) until the survivors are on the host; only they cross
PCIe / the SoC fabric. NMS then runs on the CPU. RuntimeError without CUDA or on a CUDA error.
)doc");
  m.def("detect_nms", &nms, py::arg("xyxy"), py::arg("score"), py::arg("iou_threshold"),
        py::arg("class_id") = py::none(), py::arg("max_detections") = 300,
        R"doc(
Greedy NMS on given boxes (prefer ``caper_edge.detect.nms``).

Parameters
----------
xyxy : numpy.ndarray
    (n, 4) C-contiguous float32 corners.
score : numpy.ndarray
    (n,) C-contiguous float32.
iou_threshold : float
    Suppress a box whose IoU with a kept box is > this, in [0, 1].
class_id : numpy.ndarray or None
    (n,) C-contiguous int32: boxes only suppress boxes of their own class. None: all compete.
max_detections : int
    At most this many indices are returned (>= 1).

Returns
-------
numpy.ndarray
    (K,) int64 row indices of the kept boxes, by descending score (ties: lower row first).
    NaN scores and non-finite boxes are never kept. Runs without the GIL.
)doc");
}

}  // namespace caper::bind
