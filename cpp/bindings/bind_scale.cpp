// Bindings for the scale area: the weight-event detector (cpp/include/caper/weight_events.hpp).
#include <pybind11/stl.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "caper/weight_events.hpp"

namespace caper::bind {

namespace {

using caper::scale::DetectorState;
using caper::scale::kCells;
using caper::scale::WeightEvent;
using caper::scale::WeightEventDetector;
using caper::scale::WeightEventKind;
using caper::scale::WeightEventParams;

std::uint8_t check_flags(int flags) {
  if (flags < 0 || flags > 0xFF) {
    throw py::value_error("flags = " + std::to_string(flags) + ": expected an integer in 0..255 (bit0 ADC fault, "
                          "bit1 overload, bit2 motion)");
  }
  return static_cast<std::uint8_t>(flags);
}

py::object cells_or_none(const WeightEvent& e) {
  if (!e.has_cells) return py::none();
  return py::make_tuple(e.cell_delta_g[0], e.cell_delta_g[1], e.cell_delta_g[2], e.cell_delta_g[3]);
}

py::object cop_or_none(const WeightEvent& e) {
  if (!e.has_cells) return py::none();
  return py::make_tuple(e.cop_u, e.cop_v);
}

std::string event_repr(const WeightEvent& e) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  s << "WeightEvent(kind='" << caper::scale::to_string(e.kind) << "', delta_g=" << std::showpos << e.delta_g
    << std::noshowpos << ", sigma_g=" << e.sigma_g << ", t_start_ns=" << e.t_start_ns
    << ", t_settled_ns=" << e.t_settled_ns << ", t_decided_ns=" << e.t_decided_ns << ")";
  return s.str();
}

py::dict stats_dict(const WeightEventDetector& d) {
  const auto& s = d.stats();
  py::dict out;
  out["samples"] = s.samples;
  out["faults"] = s.faults;
  out["out_of_order"] = s.out_of_order;
  out["gated"] = s.gated;
  out["gaps"] = s.gaps;
  out["hf_gated"] = s.hf_gated;
  out["activities"] = s.activities;
  out["settled"] = s.settled;
  out["provisional"] = s.provisional;
  out["cancelled"] = s.cancelled;
  out["rejected"] = s.rejected;
  return out;
}

std::vector<WeightEvent> push_many(WeightEventDetector& d, const py::array& t_ns, const py::array& grams,
                                   const py::object& flags) {
  require_c_contiguous<std::int64_t>(t_ns, "t_ns");
  require_c_contiguous<double>(grams, "grams");
  if (t_ns.ndim() != 1) throw py::value_error("t_ns must be a 1-D (n,) int64 array, got shape " + shape_str(t_ns));
  const auto n = static_cast<std::size_t>(t_ns.shape(0));
  const bool per_cell = grams.ndim() == 2;
  const bool shape_ok = (grams.ndim() == 1 && static_cast<std::size_t>(grams.shape(0)) == n) ||
                        (per_cell && static_cast<std::size_t>(grams.shape(0)) == n && grams.shape(1) == kCells);
  if (!shape_ok) {
    throw py::value_error("grams must be (n,) total grams or (n, 4) per-cell grams with n = len(t_ns) = " +
                          std::to_string(n) + ", got shape " + shape_str(grams));
  }
  const std::uint8_t* f = nullptr;
  py::array flags_arr;
  if (!flags.is_none()) {
    flags_arr = py::reinterpret_borrow<py::array>(flags);
    require_c_contiguous<std::uint8_t>(flags_arr, "flags");
    if (flags_arr.ndim() != 1 || static_cast<std::size_t>(flags_arr.shape(0)) != n) {
      throw py::value_error("flags must be (n,) uint8 with n = len(t_ns) = " + std::to_string(n) + ", got shape " +
                            shape_str(flags_arr));
    }
    f = static_cast<const std::uint8_t*>(flags_arr.data());
  }
  const auto* t = static_cast<const std::int64_t*>(t_ns.data());
  const auto* g = static_cast<const double*>(grams.data());
  std::vector<WeightEvent> out;
  {
    py::gil_scoped_release release;
    d.push_many(t, per_cell ? nullptr : g, per_cell ? g : nullptr, f, n, out);
  }
  return out;
}

}  // namespace

void bind_scale(py::module_& m) {
  py::class_<WeightEventParams> params(m, "WeightEventParams", R"doc(
Parameters of WeightEventDetector (defaults = caper_edge/default.toml [scale.events]).
Prefer caper_edge.scale.WeightEventDetector(**params), which validates names and types;
docs/weight_events.md explains each parameter's trade-off.)doc");
  params.def(py::init<>())
      .def("validate", &WeightEventParams::validate, "Raise ValueError naming the first parameter out of range.");
#define CAPER_PARAM(name, doc) params.def_readwrite(#name, &WeightEventParams::name, doc)
  CAPER_PARAM(sample_rate_hz, "Nominal sample rate in Hz; converts the windows (seconds) to samples.");
  CAPER_PARAM(noise_g, "Expected noise std of the total at rest, grams (start of the adaptive estimate).");
  CAPER_PARAM(noise_adapt_s, "Time constant of the noise estimate in seconds (0: fixed at noise_g).");
  CAPER_PARAM(min_delta_g, "Smallest |delta W| in grams reported as an event.");
  CAPER_PARAM(trigger_sigmas, "Leave rest when |mean of 4 samples - baseline| > this * noise / 2.");
  CAPER_PARAM(active_std_sigmas, "Leave rest when the settle-window std > this * noise.");
  CAPER_PARAM(settle_window_s, "Seconds that must be at rest before an event is decided.");
  CAPER_PARAM(settle_std_sigmas, "At rest: window std <= this * noise.");
  CAPER_PARAM(settle_flat_sigmas, "At rest: window thirds agree within this many standard errors.");
  CAPER_PARAM(approach_tol_frac, "At rest: the preceding window's mean agrees within this fraction of |delta W|.");
  CAPER_PARAM(baseline_window_s, "Horizon of the baseline running mean in seconds.");
  CAPER_PARAM(guard_s, "Seconds by which the baseline lags the live sample.");
  CAPER_PARAM(motion_holdoff_s, "Seconds after motion or overload during which samples are not trusted.");
  CAPER_PARAM(use_motion_flag, "Gate on flag bit 2 (the MCU's accelerometer).");
  CAPER_PARAM(provisional_tol_frac, "Provisional: rest tolerances widened to this fraction of |delta W| (0: off).");
  CAPER_PARAM(hf_gate_ratio, "Vibration: 2nd-difference energy above this multiple of white noise's.");
  CAPER_PARAM(max_gap_s, "A larger gap in seconds between samples is an unobserved active period.");
#undef CAPER_PARAM

  py::class_<WeightEvent>(m, "WeightEvent", R"doc(
A change of the static load on the scale, decided by WeightEventDetector.

kind: 'settled' (final), 'provisional' (early estimate, followed later by a 'settled' or a
'cancelled' event with the same t_start_ns) or 'cancelled' (the activity settled back within
min_delta_g). Times are int64 ns in the time base of the pushed samples; t_decided_ns is the
sample whose push returned the event, so t_decided_ns - t_settled_ns is the decision latency
after the load came to rest. delta_g / sigma_g / level_g in grams; cell_delta_g (4 grams, cells
0..3) and cop ((u, v) centre of pressure on the normalised basket floor) are None unless
per-cell grams were pushed.)doc")
      .def_readonly("t_start_ns", &WeightEvent::t_start_ns)
      .def_readonly("t_settled_ns", &WeightEvent::t_settled_ns)
      .def_readonly("t_decided_ns", &WeightEvent::t_decided_ns)
      .def_readonly("delta_g", &WeightEvent::delta_g)
      .def_readonly("sigma_g", &WeightEvent::sigma_g)
      .def_readonly("level_g", &WeightEvent::level_g)
      .def_property_readonly("kind", [](const WeightEvent& e) { return caper::scale::to_string(e.kind); })
      .def_property_readonly("provisional", [](const WeightEvent& e) { return e.kind == WeightEventKind::Provisional; })
      .def_property_readonly("cancelled", [](const WeightEvent& e) { return e.kind == WeightEventKind::Cancelled; })
      .def_property_readonly("cell_delta_g", &cells_or_none)
      .def_property_readonly("cop", &cop_or_none)
      .def("as_dict", [](const WeightEvent& e) {
        py::dict d;
        d["kind"] = caper::scale::to_string(e.kind);
        d["t_start_ns"] = e.t_start_ns;
        d["t_settled_ns"] = e.t_settled_ns;
        d["t_decided_ns"] = e.t_decided_ns;
        d["delta_g"] = e.delta_g;
        d["sigma_g"] = e.sigma_g;
        d["level_g"] = e.level_g;
        d["cell_delta_g"] = cells_or_none(e);
        d["cop"] = cop_or_none(e);
        return d;
      }, "The event as a plain dict (JSON-friendly).")
      .def("__repr__", &event_repr);

  py::class_<WeightEventDetector>(m, "WeightEventDetector", R"doc(
Stable/active segmentation of a calibrated scale stream into weight events (C++).
Keeps a ring buffer of 1024 samples (about 60 KB); no allocation per sample except the returned
events. Not thread-safe: one detector per stream.)doc")
      .def(py::init<const WeightEventParams&>(), py::arg("params") = WeightEventParams{})
      .def("push", [](WeightEventDetector& d, std::int64_t t_ns, double grams, int flags) {
        std::vector<WeightEvent> out;
        d.push(t_ns, grams, nullptr, check_flags(flags), out);  // ~100 ns: not worth a GIL release
        return out;
      }, py::arg("t_ns"), py::arg("grams"), py::arg("flags") = 0, R"doc(
Push one sample: t_ns (int, ns, strictly increasing), grams (total, float), flags (0..255).
Returns the list of events decided by this sample (usually empty).)doc")
      .def("push_cells", [](WeightEventDetector& d, std::int64_t t_ns, const std::vector<double>& cells, int flags) {
        if (cells.size() != static_cast<std::size_t>(kCells)) {
          throw py::value_error("cells must hold 4 per-cell grams, got " + std::to_string(cells.size()));
        }
        std::vector<WeightEvent> out;
        const double total = cells[0] + cells[1] + cells[2] + cells[3];
        d.push(t_ns, total, cells.data(), check_flags(flags), out);
        return out;
      }, py::arg("t_ns"), py::arg("cells"), py::arg("flags") = 0, R"doc(
Push one sample as 4 per-cell grams (the total is their sum); events then carry cell_delta_g and cop.)doc")
      .def("push_many", &push_many, py::arg("t_ns"), py::arg("grams"), py::arg("flags") = py::none(), R"doc(
Push n samples. t_ns: (n,) int64; grams: (n,) float64 totals or (n, 4) float64 per-cell grams;
flags: (n,) uint8 or None. All C-contiguous (no copy is made). Releases the GIL.
Returns the events decided within the batch, in order.)doc")
      .def("reset", &WeightEventDetector::reset, "Forget everything (baseline, windows, statistics).")
      .def_property_readonly("state", [](const WeightEventDetector& d) { return caper::scale::to_string(d.state()); },
                             "'bootstrap' (no baseline yet), 'stable' or 'active'.")
      .def_property_readonly("baseline_g", &WeightEventDetector::baseline_g, "Current baseline total, grams.")
      .def_property_readonly("noise_estimate_g", &WeightEventDetector::noise_estimate_g,
                             "Current noise std estimate of the total, grams.")
      .def_property_readonly("params", &WeightEventDetector::params, "A copy of the parameters.")
      .def_property_readonly("stats", &stats_dict, "Counters: samples, faults, out_of_order, gated, gaps, hf_gated, "
                             "activities, settled, provisional, cancelled, rejected.");
}

}  // namespace caper::bind
