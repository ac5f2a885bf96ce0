// Weight-event detection on the calibrated load-cell stream (no pybind11 here).
//
// The detector segments the stream into STABLE and ACTIVE phases and reports the change of the
// static load (delta W) between two settled windows. Steps, per sample:
//   1. Drop ADC-fault / non-finite / out-of-order samples; a time gap starts an ACTIVE phase.
//   2. STABLE: leave it when the mean of the last 4 samples departs from the baseline, when the
//      short-window standard deviation is high, or when the sample is motion-gated (flag bit 2,
//      overload). Otherwise feed the baseline (a running mean that lags the live sample by a
//      guard, so the start of an event never leaks into it, and that re-baselines slow drift)
//      and adapt the noise estimate.
//   3. ACTIVE: once the last `settle_window` samples lie after the motion hold-off and are at
//      rest (standard deviation, a three-segment flatness test against the noise estimate, and
//      the window before agrees: the load approached this level), decide: |delta W| >=
//      min_delta_g gives a settled event and a new baseline; otherwise the activity was a bump
//      or noise and the baseline is kept. Before that, one provisional event is emitted as soon
//      as the same tests pass with tolerances widened to a fraction of the change and the
//      window does not vibrate (second-difference energy below hf_gate_ratio).
// Every window is a handful of samples, evaluated directly on a ring buffer: O(window) per
// sample, no cumulative sums, so there is no loss of precision over hours of streaming.
// docs/weight_events.md describes the algorithm, the parameters and their trade-offs.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace caper::scale {

inline constexpr std::uint8_t kFlagAdcFault = 0x01;
inline constexpr std::uint8_t kFlagOverload = 0x02;
inline constexpr std::uint8_t kFlagMotion = 0x04;
inline constexpr int kCells = 4;

// Parameters; defaults equal caper_edge/default.toml [scale.events] (a test checks this).
struct WeightEventParams {
  double sample_rate_hz = 80.0;       // nominal sample rate; converts the windows below to samples
  double noise_g = 1.5;               // expected noise std of the total at rest (start of the estimate)
  double noise_adapt_s = 20.0;        // time constant of the noise estimate (0: fixed at noise_g)
  double min_delta_g = 3.0;           // smallest |delta W| reported as an event
  double trigger_sigmas = 4.5;        // leave STABLE when |mean of 4 samples - baseline| > this * noise/2
  double active_std_sigmas = 2.5;     // ... or when the settle-window std > this * noise
  double settle_window_s = 0.2;       // length of the window that must be at rest to decide
  double settle_std_sigmas = 1.6;     // at rest: window std <= this * noise
  double settle_flat_sigmas = 3.0;    // at rest: thirds of the window agree within this many std errors
  double approach_tol_frac = 0.02;    // at rest: the preceding window's mean agrees within this fraction of |dW|
  double baseline_window_s = 2.0;     // horizon of the baseline running mean
  double guard_s = 0.1;               // the baseline lags the live sample by this much
  double motion_holdoff_s = 0.3;      // samples this long after motion / overload are not trusted
  bool use_motion_flag = true;        // gate on flag bit 2 (the MCU's accelerometer)
  double provisional_tol_frac = 0.05; // provisional: settle tolerances widened to this fraction of |dW| (0: off)
  double hf_gate_ratio = 30.0;        // vibration: 2nd-difference energy above this * white noise's
  double max_gap_s = 0.25;            // a larger gap between samples is an unobserved ACTIVE period

  // Throws std::invalid_argument naming the parameter, its value and the expected range.
  void validate() const;
};

enum class WeightEventKind : std::uint8_t { Settled = 0, Provisional = 1, Cancelled = 2 };

struct WeightEvent {
  std::int64_t t_start_ns = 0;    // first sample that departed from the baseline
  std::int64_t t_settled_ns = 0;  // first sample of the window judged at rest
  std::int64_t t_decided_ns = 0;  // the sample whose push returned this event
  double delta_g = 0.0;           // change of the static load (settled mean - baseline), grams
  double sigma_g = 0.0;           // its standard error estimate, grams
  double level_g = 0.0;           // the settled total after the change, grams
  WeightEventKind kind = WeightEventKind::Settled;
  bool has_cells = false;                 // per-cell figures below are valid
  std::array<double, kCells> cell_delta_g{};  // delta W split over cells 0..3, grams
  double cop_u = 0.0;             // centre of pressure of delta W, normalised floor coordinates
  double cop_v = 0.0;
};

struct WeightEventStats {
  std::uint64_t samples = 0;       // pushed
  std::uint64_t faults = 0;        // dropped: ADC fault flag or non-finite value
  std::uint64_t out_of_order = 0;  // dropped: timestamp not after the previous one
  std::uint64_t gated = 0;         // motion-flagged or overloaded samples
  std::uint64_t gaps = 0;          // time gaps longer than max_gap_s
  std::uint64_t hf_gated = 0;      // samples whose window vibrated (high-frequency energy)
  std::uint64_t activities = 0;    // STABLE -> ACTIVE transitions
  std::uint64_t settled = 0;       // settled events emitted
  std::uint64_t provisional = 0;   // provisional events emitted
  std::uint64_t cancelled = 0;     // provisional events later cancelled
  std::uint64_t rejected = 0;      // activities that settled back within min_delta_g
};

enum class DetectorState : std::uint8_t { Bootstrap = 0, Stable = 1, Active = 2 };

class WeightEventDetector {
 public:
  explicit WeightEventDetector(const WeightEventParams& params = WeightEventParams{});

  // One calibrated sample: total grams, optional per-cell grams (4 values, or nullptr), flags.
  // Decided events are appended to `out`.
  void push(std::int64_t t_ns, double grams, const double* cells, std::uint8_t flags,
            std::vector<WeightEvent>& out);
  // n samples; `cells` is n x 4 row-major or nullptr (then `grams` is used), `grams` may be
  // nullptr when `cells` is given (the total is their sum); `flags` may be nullptr (all 0).
  void push_many(const std::int64_t* t_ns, const double* grams, const double* cells,
                 const std::uint8_t* flags, std::size_t n, std::vector<WeightEvent>& out);
  void reset();

  const WeightEventParams& params() const { return p_; }
  const WeightEventStats& stats() const { return stats_; }
  DetectorState state() const { return state_; }
  double baseline_g() const { return base_; }
  double noise_estimate_g() const { return sigma_; }

 private:
  struct Sample {
    std::int64_t t;
    double g;
    std::array<double, kCells> c;
    bool gated;
  };
  struct Window {          // statistics of samples [first, first + n)
    std::uint64_t first;
    std::size_t n, n1, n3;   // length, and of the first and last thirds
    double mean, sd;         // grams
    double m1, m2, m3;       // means of the thirds
    double hf;               // mean squared 2nd difference / white noise's (6 sigma^2)
  };

  static constexpr std::size_t kRing = 1024;  // power of two; windows are validated to fit
  const Sample& at(std::uint64_t i) const { return ring_[i & (kRing - 1)]; }
  std::uint64_t store(std::int64_t t_ns, double grams, const double* cells, std::uint8_t flags);
  std::uint64_t window_floor() const;  // first index a window may use (gap, motion hold-off, ring)
  Window window(std::uint64_t first, std::uint64_t last) const;
  bool triggered(std::uint64_t cur, const Window* w) const;
  bool at_rest(const Window& w, double rel, double approach_rel) const;
  bool approached(const Window& w, double tol_frac) const;
  void enter_active(std::uint64_t cur, bool by_motion);
  void feed_baseline(std::uint64_t upto_excl);
  void rebase(std::uint64_t first, std::uint64_t cur);
  void adapt_noise(const Window& w);
  void decide(const Window& w, std::uint64_t cur, std::vector<WeightEvent>& out);
  void try_provisional(const Window& w, std::uint64_t cur, std::vector<WeightEvent>& out);
  WeightEvent make_event(WeightEventKind kind, std::uint64_t first, std::uint64_t cur,
                         double mean, double sigma) const;

  WeightEventParams p_;
  std::size_t settle_n_, guard_n_, baseline_n_, holdoff_n_, adapt_n_;
  std::int64_t max_gap_ns_;

  std::array<Sample, kRing> ring_{};
  std::uint64_t next_ = 0;          // index of the next sample to store
  std::uint64_t segment_start_ = 0; // first index after the last gap / reset
  std::uint64_t motion_until_ = 0;  // windows may start at this index (motion hold-off)
  std::uint64_t fed_upto_ = 0;      // next index to feed into the baseline
  std::uint64_t active_idx_ = 0;    // index that started the ACTIVE phase
  std::int64_t last_t_ = 0;
  std::int64_t t_start_ = 0;
  bool have_last_ = false;
  bool prov_sent_ = false;
  bool cells_ok_ = true;            // every sample so far had per-cell values

  DetectorState state_ = DetectorState::Bootstrap;
  double base_ = 0.0;               // baseline total, grams
  std::array<double, kCells> base_c_{};
  std::size_t base_n_ = 0;          // effective sample count behind base_
  double sigma_;                    // noise estimate, grams
  WeightEventStats stats_{};
};

const char* to_string(WeightEventKind kind);
const char* to_string(DetectorState state);

}  // namespace caper::scale
