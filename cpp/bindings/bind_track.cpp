// Bindings for the track area: linear_assignment, KalmanBoxFilter, Tracker.
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include <pybind11/stl.h>

#include "bindings.hpp"
#include "caper/assignment.hpp"
#include "caper/kalman.hpp"
#include "caper/tracker.hpp"

namespace caper::bind {

namespace {

// Problems below this many entries (32x32) solve in a few microseconds at most, comparable to
// releasing and re-acquiring the GIL; larger ones release it.
constexpr std::size_t kReleaseGilEntries = 1024;

template <typename T>
py::tuple assign_from(const py::array& cost, double cost_limit) {
  const auto n = static_cast<std::size_t>(cost.shape(0));
  const auto m = static_cast<std::size_t>(cost.shape(1));
  const T* data = static_cast<const T*>(cost.data());
  thread_local std::vector<int32_t> row_to_col;
  row_to_col.resize(n);
  std::size_t matched = 0;
  try {
    if (n * m >= kReleaseGilEntries) {
      py::gil_scoped_release release;
      matched = track::linear_assignment(data, n, m, cost_limit, row_to_col.data());
    } else {
      matched = track::linear_assignment(data, n, m, cost_limit, row_to_col.data());
    }
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  py::array_t<int64_t> rows(static_cast<py::ssize_t>(matched));
  py::array_t<int64_t> cols(static_cast<py::ssize_t>(matched));
  int64_t* r = rows.mutable_data();
  int64_t* c = cols.mutable_data();
  for (std::size_t i = 0, k = 0; i < n; ++i) {
    if (row_to_col[i] >= 0) {
      r[k] = static_cast<int64_t>(i);
      c[k++] = row_to_col[i];
    }
  }
  return py::make_tuple(std::move(rows), std::move(cols));
}

py::tuple linear_assignment_py(const py::handle& cost_obj, double cost_limit) {
  if (std::isnan(cost_limit)) throw py::value_error("cost_limit is nan: expected a number or inf");
  // (A default-constructed py::array is an empty float64 array, not "no array": keep a flag.)
  const bool is_array = py::isinstance<py::array>(cost_obj);
  py::array cost = is_array ? py::reinterpret_borrow<py::array>(cost_obj) : py::array();
  const bool native = is_array && (cost.flags() & py::array::c_style) != 0 &&
                      (cost.dtype().equal(py::dtype::of<double>()) || cost.dtype().equal(py::dtype::of<float>()));
  if (!native) {
    // Anything else (lists, integer or strided arrays) is converted once to float64.
    cost = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(cost_obj);
    if (!cost) {
      PyErr_Clear();
      throw py::value_error("cost must be a 2-D array of numbers, got " +
                            std::string(py::str(py::type::of(cost_obj))));
    }
  }
  if (cost.ndim() != 2) {
    throw py::value_error("cost must be a 2-D (n_rows, n_cols) array, got shape " + shape_str(cost));
  }
  if (cost.dtype().equal(py::dtype::of<float>())) return assign_from<float>(cost, cost_limit);
  return assign_from<double>(cost, cost_limit);
}

// ----------------------------------------------------------------------------------------------
// Kalman filter: small, functional (mean, covariance in -> out), for tests and tools.
// ----------------------------------------------------------------------------------------------

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

track::BoxState state_from(const DoubleArray& mean, const DoubleArray& cov) {
  if (mean.size() != 8) throw py::value_error("mean must have 8 values (cx, cy, w, h, vcx, vcy, vw, vh), got shape " + shape_str(mean));
  if (cov.ndim() != 2 || cov.shape(0) != 8 || cov.shape(1) != 8)
    throw py::value_error("covariance must be (8, 8), got shape " + shape_str(cov));
  track::BoxState s;
  std::copy(mean.data(), mean.data() + 8, s.mean.begin());
  std::copy(cov.data(), cov.data() + 64, s.cov.begin());
  return s;
}

std::array<double, 4> box_from(const DoubleArray& xywh) {
  if (xywh.size() != 4) throw py::value_error("xywh must have 4 values (cx, cy, w, h), got shape " + shape_str(xywh));
  std::array<double, 4> z;
  std::copy(xywh.data(), xywh.data() + 4, z.begin());
  for (double v : z)
    if (!std::isfinite(v)) throw py::value_error("xywh must be finite, got " + std::string(py::str(py::cast(z))));
  return z;
}

template <std::size_t N>
py::array_t<double> matrix(const std::array<double, N>& values, py::ssize_t rows, py::ssize_t cols) {
  py::array_t<double> out({rows, cols});
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

py::tuple state_tuple(const track::BoxState& s) {
  py::array_t<double> mean(8);
  std::copy(s.mean.begin(), s.mean.end(), mean.mutable_data());
  return py::make_tuple(std::move(mean), matrix(s.cov, 8, 8));
}

// ----------------------------------------------------------------------------------------------
// Tracker
// ----------------------------------------------------------------------------------------------

// The C++ tracker is not thread-safe; update() runs without the GIL, so the object carries
// its own lock.
struct PyTracker {
  explicit PyTracker(const track::TrackerParams& p) : core(p) {}
  track::Tracker core;
  std::mutex mu;
  track::TrackTable scratch;
};

template <typename T>
py::array_t<T> column(const std::vector<T>& values, py::ssize_t rows, py::ssize_t cols = 0) {
  py::array_t<T> out = cols > 0 ? py::array_t<T>({rows, cols}) : py::array_t<T>(rows);
  if (!values.empty()) std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

py::tuple table_tuple(const track::TrackTable& t, int32_t top_k) {
  const auto n = static_cast<py::ssize_t>(t.size());
  py::array_t<bool> at_rest(n);
  for (py::ssize_t i = 0; i < n; ++i) at_rest.mutable_data()[i] = t.at_rest[i] != 0;
  return py::make_tuple(column(t.track_id, n), column(t.xyxy, n, 4), column(t.score, n),
                        column(t.class_id, n), column(t.state, n), column(t.zone, n),
                        std::move(at_rest), column(t.det_index, n), column(t.sku_ids, n, top_k),
                        column(t.sku_prob, n, top_k), column(t.t_first_ns, n), column(t.t_last_ns, n));
}

py::ssize_t rows_of(const py::array& a, const char* name, py::ssize_t n, py::ssize_t cols) {
  const bool ok = cols == 0 ? (a.ndim() == 1 && a.shape(0) == n)
                            : (a.ndim() == 2 && a.shape(0) == n && (cols < 0 || a.shape(1) == cols));
  if (!ok) {
    std::string want = cols == 0 ? "(" + std::to_string(n) + ",)"
                                 : "(" + std::to_string(n) + ", " + (cols < 0 ? std::string("D") : std::to_string(cols)) + ")";
    throw py::value_error(std::string(name) + " must have shape " + want + " to match xyxy's " +
                          std::to_string(n) + " detections, got " + shape_str(a));
  }
  return cols == 0 ? 1 : a.shape(1);
}

py::tuple tracker_update(PyTracker& self, const py::array& xyxy, const py::array& score,
                         const py::array& class_id, const std::optional<py::array>& embedding,
                         const std::optional<py::array>& depth_m, std::optional<int64_t> t_ns,
                         const std::optional<py::array>& sku_similarity) {
  require_c_contiguous<float>(xyxy, "xyxy");
  require_c_contiguous<float>(score, "score");
  require_c_contiguous<int32_t>(class_id, "class_id");
  if (xyxy.ndim() != 2 || xyxy.shape(1) != 4)
    throw py::value_error("xyxy must have shape (n, 4), got " + shape_str(xyxy));
  const py::ssize_t n = xyxy.shape(0);
  rows_of(score, "score", n, 0);
  rows_of(class_id, "class_id", n, 0);
  track::FrameInput in;
  in.n = static_cast<std::size_t>(n);
  in.xyxy = static_cast<const float*>(xyxy.data());
  in.score = static_cast<const float*>(score.data());
  in.class_id = static_cast<const int32_t*>(class_id.data());
  if (embedding) {
    require_c_contiguous<float>(*embedding, "embedding");
    in.embedding_dim = static_cast<std::size_t>(rows_of(*embedding, "embedding", n, -1));
    in.embedding = static_cast<const float*>(embedding->data());
  }
  if (depth_m) {
    require_c_contiguous<float>(*depth_m, "depth_m");
    rows_of(*depth_m, "depth_m", n, 0);
    in.depth_m = static_cast<const float*>(depth_m->data());
  }
  if (sku_similarity) {
    require_c_contiguous<float>(*sku_similarity, "sku_similarity");
    in.n_sku = static_cast<std::size_t>(rows_of(*sku_similarity, "sku_similarity", n, -1));
    in.sku_similarity = static_cast<const float*>(sku_similarity->data());
  }
  if (t_ns) {
    in.has_t = true;
    in.t_ns = *t_ns;
  }
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(self.mu);
    try {
      self.core.update(in);
    } catch (const std::invalid_argument& e) {
      py::gil_scoped_acquire acquire;
      throw py::value_error(e.what());
    }
  }
  py::list transitions;
  for (const track::ZoneTransition& z : self.core.transitions()) {
    transitions.append(py::make_tuple(static_cast<int>(z.kind), z.track_id, z.class_id, z.t_ns, z.decided_t_ns));
  }
  return py::make_tuple(table_tuple(self.core.frame_tracks(), self.core.params().sku_top_k), std::move(transitions));
}

#define CAPER_PARAM(name, doc) .def_readwrite(#name, &track::TrackerParams::name, doc)

void bind_tracker(py::module_& m) {
  py::class_<track::TrackerParams>(m, "TrackerParams", R"doc(
Plain parameter record of the C++ tracker. Build it from caper_edge.config.TrackerConfig (which
documents every field, its unit and its trade-off); the constructor of Tracker validates it.
)doc")
      .def(py::init<>())
      CAPER_PARAM(high_score_threshold, "score >= this: first association")
      CAPER_PARAM(low_score_threshold, "scores below this are ignored")
      CAPER_PARAM(new_track_score_threshold, "min score of an unmatched detection to start a track")
      CAPER_PARAM(match_cost_limit, "first stage: max fused cost of a match")
      CAPER_PARAM(min_iou, "first stage motion gate (IoU)")
      CAPER_PARAM(low_score_min_iou, "second stage min IoU")
      CAPER_PARAM(unconfirmed_min_iou, "tentative tracks: min IoU")
      CAPER_PARAM(appearance_weight, "weight of the cosine distance in the fused cost")
      CAPER_PARAM(appearance_gate, "cosine distance above which a pair is forbidden")
      CAPER_PARAM(rest_appearance_gate, "... for a track at rest, low-score stage included")
      CAPER_PARAM(reid_max_appearance_distance, "re-identify a lost track without overlap below this")
      CAPER_PARAM(reid_max_displacement, "... if it moved less (box diagonals)")
      CAPER_PARAM(embedding_momentum, "EMA weight of the old embedding")
      CAPER_PARAM(class_gating, "never match across class_id")
      CAPER_PARAM(duplicate_iou, "tracked/lost overlap above which they merge")
      CAPER_PARAM(confirm_hits, "consecutive matches that confirm a track")
      CAPER_PARAM(lost_timeout_s, "lost track removal inside the basket (s)")
      CAPER_PARAM(outside_lost_timeout_s, "lost track removal outside the basket (s)")
      CAPER_PARAM(rest_lost_timeout_s, "lost track removal at rest in the basket (s)")
      CAPER_PARAM(rest_max_displacement, "rest: drift bound from the settle point (box diagonals)")
      CAPER_PARAM(rest_min_duration_s, "rest must last this long (s)")
      CAPER_PARAM(frame_period_s, "nominal frame period (s)")
      CAPER_PARAM(kalman_position_std, "position noise, fraction of box size")
      CAPER_PARAM(kalman_velocity_std, "velocity noise, fraction of box size")
      CAPER_PARAM(kalman_measurement_std, "measurement noise, fraction of box size")
      CAPER_PARAM(basket_polygon, "flat x0, y0, x1, y1, ... pixels; empty = whole image")
      CAPER_PARAM(basket_depth_min_m, "basket interior depth range, near (m)")
      CAPER_PARAM(basket_depth_max_m, "basket interior depth range, far (m)")
      CAPER_PARAM(zone_enter_dwell_s, "dwell before entering commits (s)")
      CAPER_PARAM(zone_leave_dwell_s, "dwell before leaving commits (s)")
      CAPER_PARAM(zone_min_frames, "observations before a zone change commits")
      CAPER_PARAM(zone_class_ids, "classes with basket zones; empty = every class")
      CAPER_PARAM(sku_temperature, "softmax temperature of SKU similarities")
      CAPER_PARAM(sku_half_life_s, "half-life of SKU evidence (s)")
      CAPER_PARAM(sku_evidence_span, "deficit behind the best SKU beyond which only its log is kept (nats); 0 = unbounded")
      CAPER_PARAM(sku_top_k, "SKUs reported per track");

  py::class_<PyTracker>(m, "Tracker", R"doc(
The C++ basket tracker. Use caper_edge.track.Tracker, which validates and converts inputs and
wraps the results; this class takes exactly-typed C-contiguous arrays.
)doc")
      .def(py::init([](const track::TrackerParams& p) {
             try {
               return std::make_unique<PyTracker>(p);
             } catch (const std::invalid_argument& e) {
               throw py::value_error(e.what());
             }
           }),
           py::arg("params"))
      .def("update", &tracker_update, py::arg("xyxy"), py::arg("score"), py::arg("class_id"),
           py::arg("embedding") = py::none(), py::arg("depth_m") = py::none(), py::arg("t_ns") = py::none(),
           py::arg("sku_similarity") = py::none(), R"doc(
Process one frame.

Parameters
----------
xyxy : (n, 4) float32, C-contiguous
    Boxes x1, y1, x2, y2 in pixels (finite, x2 >= x1, y2 >= y1).
score : (n,) float32
class_id : (n,) int32
embedding : (n, D) float32 or None
    Appearance vectors (any scale; normalised internally). D is fixed by the first frame.
depth_m : (n,) float32 or None
    Depth of each detection in metres; NaN = unknown.
t_ns : int or None
    Frame time, int64 nanoseconds, strictly increasing; None = previous + frame_period_s.
sku_similarity : (n, S) float32 or None
    Gallery similarities of each detection to S SKUs. S is fixed by the first frame.

Returns
-------
(columns, transitions)
    columns: track_id (k,) int64, xyxy (k, 4) float32, score (k,) float32, class_id (k,) int32,
    state (k,) uint8, zone (k,) uint8, at_rest (k,) bool, det_index (k,) int32,
    sku_ids (k, top_k) int32, sku_prob (k, top_k) float32, t_first_ns (k,) int64,
    t_last_ns (k,) int64 for the confirmed tracks matched in this frame.
    transitions: list of (kind, track_id, class_id, t_ns, decided_t_ns).

Notes
-----
Reads the inputs in place (no copies) and releases the GIL while it runs. Raises ValueError
naming the input, index and value on malformed input; the tracker is unchanged then.
)doc")
      .def(
          "all_tracks",
          [](PyTracker& self, bool include_tentative) {
            std::lock_guard<std::mutex> lock(self.mu);
            self.core.all_tracks(self.scratch, include_tentative);
            return table_tuple(self.scratch, self.core.params().sku_top_k);
          },
          py::arg("include_tentative") = false,
          "Columns (as update's) of every live confirmed track, tracked and lost (and tentative ones if asked).")
      .def("reset", [](PyTracker& self) {
            std::lock_guard<std::mutex> lock(self.mu);
            self.core.reset();
          }, "Forget every track; IDs start again at 1.")
      .def_property_readonly("frame_count", [](const PyTracker& self) { return self.core.frame_count(); })
      .def_property_readonly("last_t_ns", [](const PyTracker& self) { return self.core.last_t_ns(); })
      .def_property_readonly("embedding_dim", [](const PyTracker& self) { return self.core.embedding_dim(); })
      .def_property_readonly("n_sku", [](const PyTracker& self) { return self.core.n_sku(); })
      .def_property_readonly("params", [](const PyTracker& self) { return self.core.params(); });
}

void bind_kalman(py::module_& m) {
  py::class_<track::KalmanBoxFilter>(m, "KalmanBoxFilter", R"doc(
Constant-velocity Kalman filter on boxes, state (cx, cy, w, h, vcx, vcy, vw, vh); noise standard
deviations are fractions of the box size (see docs/tracker.md for the matrices).
Functional interface: every method takes and returns (mean (8,), covariance (8, 8)) float64.
)doc")
      .def(py::init([](double position_std, double velocity_std, double measurement_std) {
             for (double v : {position_std, velocity_std, measurement_std})
               if (!(v > 0.0) || std::isinf(v))
                 throw py::value_error("Kalman noise standard deviations must be finite and > 0, got " +
                                       std::to_string(v));
             track::KalmanBoxFilter f;
             f.position_std = position_std;
             f.velocity_std = velocity_std;
             f.measurement_std = measurement_std;
             return f;
           }),
           py::arg("position_std") = 1.0 / 20.0, py::arg("velocity_std") = 1.0 / 160.0,
           py::arg("measurement_std") = 1.0 / 20.0)
      .def_readonly("position_std", &track::KalmanBoxFilter::position_std)
      .def_readonly("velocity_std", &track::KalmanBoxFilter::velocity_std)
      .def_readonly("measurement_std", &track::KalmanBoxFilter::measurement_std)
      .def("initiate", [](const track::KalmanBoxFilter& f, const DoubleArray& xywh) {
             const auto z = box_from(xywh);
             return state_tuple(f.initiate(z.data()));
           }, py::arg("xywh"), "New (mean, covariance) from a box (cx, cy, w, h) in pixels.")
      .def("predict", [](const track::KalmanBoxFilter& f, const DoubleArray& mean, const DoubleArray& cov, double dt) {
             if (!(dt >= 0.0) || std::isinf(dt)) throw py::value_error("dt must be finite and >= 0, got " + std::to_string(dt));
             track::BoxState s = state_from(mean, cov);
             f.predict(s, dt);
             return state_tuple(s);
           }, py::arg("mean"), py::arg("covariance"), py::arg("dt") = 1.0, "Propagate by dt steps (frames).")
      .def("update", [](const track::KalmanBoxFilter& f, const DoubleArray& mean, const DoubleArray& cov, const DoubleArray& xywh) {
             track::BoxState s = state_from(mean, cov);
             const auto z = box_from(xywh);
             f.update(s, z.data());
             return state_tuple(s);
           }, py::arg("mean"), py::arg("covariance"), py::arg("xywh"), "Correct with a measured box (cx, cy, w, h).")
      .def("transition_matrix", [](const track::KalmanBoxFilter& f, double dt) { return matrix(f.transition(dt), 8, 8); },
           py::arg("dt") = 1.0, "F (8, 8) for a step of dt.")
      .def("process_noise", [](const track::KalmanBoxFilter& f, const DoubleArray& mean, double dt) {
             track::BoxState s;
             if (mean.size() != 8) throw py::value_error("mean must have 8 values, got shape " + shape_str(mean));
             std::copy(mean.data(), mean.data() + 8, s.mean.begin());
             return matrix(f.process_noise(s, dt), 8, 8);
           }, py::arg("mean"), py::arg("dt") = 1.0, "Q (8, 8) added by predict() from this mean.")
      .def("measurement_noise", [](const track::KalmanBoxFilter& f, const DoubleArray& mean) {
             track::BoxState s;
             if (mean.size() != 8) throw py::value_error("mean must have 8 values, got shape " + shape_str(mean));
             std::copy(mean.data(), mean.data() + 8, s.mean.begin());
             return matrix(f.measurement_noise(s), 4, 4);
           }, py::arg("mean"), "R (4, 4) used by update() with this (predicted) mean.");
}

}  // namespace

void bind_track(py::module_& m) {
  bind_kalman(m);
  bind_tracker(m);
  m.def("linear_assignment", &linear_assignment_py, py::arg("cost"),
        py::arg("cost_limit") = std::numeric_limits<double>::infinity(),
        R"doc(
Optimal rectangular linear assignment (Jonker-Volgenant LAPJV).

Parameters
----------
cost : (n_rows, n_cols) array_like
    Pair costs. float64 and float32 C-contiguous arrays are read in place (no copy); anything
    else is converted to float64 once. ``+inf`` marks a forbidden pair, never returned.
    NaN and ``-inf`` raise ValueError.
cost_limit : float, default inf
    ``inf``: the least-cost assignment of maximum cardinality over allowed pairs (the optimum
    of ``scipy.optimize.linear_sum_assignment`` when every entry is finite; rows or columns
    with no allowed pair stay unassigned instead of failing). Finite ``L``: the optimum of
    ``lap.lapjv(cost, extend_cost=True, cost_limit=L)``, i.e. minimise the matched cost plus
    ``L/2`` per unassigned row and per unassigned column; only pairs cheaper than ``L`` match.

Returns
-------
(rows, cols) : tuple of (k,) int64 arrays
    Matched pairs, sorted by row, as scipy returns them.

Notes
-----
Releases the GIL for problems of 1024 entries or more. Allocates only the two outputs once
its thread-local workspace is warm.
)doc");
}

}  // namespace caper::bind
