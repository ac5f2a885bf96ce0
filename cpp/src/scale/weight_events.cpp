// Weight-event detector: see cpp/include/caper/weight_events.hpp and docs/weight_events.md.
#include "caper/weight_events.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace caper::scale {

namespace {

constexpr std::size_t kTriggerSamples = 4;   // mean of this many samples is compared with the baseline
constexpr std::size_t kBacktrackMax = 40;    // how far t_start may be walked back (0.5 s at 80 Hz)
constexpr double kBacktrackSigmas = 2.0;     // t_start: first of the run of samples this far from baseline

void require(bool ok, const char* name, double value, const char* expected) {
  if (!ok) {
    std::ostringstream msg;
    msg << "weight event parameter " << name << " = " << value << ": expected " << expected;
    throw std::invalid_argument(msg.str());
  }
}

std::size_t to_samples(double seconds, double rate_hz) {
  return static_cast<std::size_t>(std::lround(seconds * rate_hz));
}

double sq(double x) { return x * x; }

}  // namespace

void WeightEventParams::validate() const {
  require(sample_rate_hz >= 1.0 && sample_rate_hz <= 10000.0, "sample_rate_hz", sample_rate_hz, "1..10000 Hz");
  require(noise_g > 0.0 && noise_g < 1e4, "noise_g", noise_g, "positive grams");
  require(noise_adapt_s >= 0.0, "noise_adapt_s", noise_adapt_s, "seconds >= 0 (0: fixed)");
  require(min_delta_g > 0.0, "min_delta_g", min_delta_g, "positive grams");
  require(trigger_sigmas > 0.0, "trigger_sigmas", trigger_sigmas, "a positive number of noise std");
  require(settle_std_sigmas > 0.0, "settle_std_sigmas", settle_std_sigmas, "a positive number of noise std");
  require(active_std_sigmas >= settle_std_sigmas, "active_std_sigmas", active_std_sigmas,
          ">= settle_std_sigmas (the hysteresis between leaving and reaching rest)");
  require(settle_flat_sigmas > 0.0, "settle_flat_sigmas", settle_flat_sigmas, "a positive number of std errors");
  const double n_settle = settle_window_s * sample_rate_hz;
  require(n_settle >= 6.0 && n_settle <= 400.0, "settle_window_s", settle_window_s,
          "a window of 6..400 samples at sample_rate_hz");
  require(approach_tol_frac >= 0.0 && approach_tol_frac < 1.0, "approach_tol_frac", approach_tol_frac,
          "a fraction in [0, 1)");
  require(baseline_window_s * sample_rate_hz >= 1.0, "baseline_window_s", baseline_window_s,
          "seconds covering at least one sample");
  require(guard_s >= 0.0 && guard_s * sample_rate_hz <= 400.0, "guard_s", guard_s, "0..400 samples");
  require(motion_holdoff_s >= 0.0 && motion_holdoff_s <= 60.0, "motion_holdoff_s", motion_holdoff_s, "0..60 s");
  require(provisional_tol_frac >= 0.0 && provisional_tol_frac < 1.0, "provisional_tol_frac", provisional_tol_frac,
          "a fraction in [0, 1) (0: no provisional events)");
  require(hf_gate_ratio >= 1.0, "hf_gate_ratio", hf_gate_ratio, ">= 1 (white noise has ratio 1)");
  require(max_gap_s > 1.0 / sample_rate_hz, "max_gap_s", max_gap_s, "longer than one sample period");
}

const char* to_string(WeightEventKind kind) {
  switch (kind) {
    case WeightEventKind::Settled: return "settled";
    case WeightEventKind::Provisional: return "provisional";
    case WeightEventKind::Cancelled: return "cancelled";
  }
  return "?";
}

const char* to_string(DetectorState state) {
  switch (state) {
    case DetectorState::Bootstrap: return "bootstrap";
    case DetectorState::Stable: return "stable";
    case DetectorState::Active: return "active";
  }
  return "?";
}

WeightEventDetector::WeightEventDetector(const WeightEventParams& params) : p_(params) {
  p_.validate();
  const double r = p_.sample_rate_hz;
  settle_n_ = std::max<std::size_t>(6, to_samples(p_.settle_window_s, r));
  guard_n_ = to_samples(p_.guard_s, r);
  baseline_n_ = std::max<std::size_t>(1, to_samples(p_.baseline_window_s, r));
  holdoff_n_ = to_samples(p_.motion_holdoff_s, r);
  adapt_n_ = to_samples(p_.noise_adapt_s, r);
  max_gap_ns_ = static_cast<std::int64_t>(std::llround(p_.max_gap_s * 1e9));
  reset();
}

void WeightEventDetector::reset() {
  next_ = segment_start_ = motion_until_ = fed_upto_ = active_idx_ = 0;
  last_t_ = t_start_ = 0;
  have_last_ = prov_sent_ = false;
  cells_ok_ = true;
  state_ = DetectorState::Bootstrap;
  base_ = 0.0;
  base_c_.fill(0.0);
  base_n_ = 0;
  sigma_ = p_.noise_g;
  stats_ = WeightEventStats{};
}

void WeightEventDetector::push_many(const std::int64_t* t_ns, const double* grams, const double* cells,
                                    const std::uint8_t* flags, std::size_t n, std::vector<WeightEvent>& out) {
  for (std::size_t i = 0; i < n; ++i) {
    const double* c = cells != nullptr ? cells + i * kCells : nullptr;
    const double g = grams != nullptr ? grams[i] : (c[0] + c[1] + c[2] + c[3]);
    push(t_ns[i], g, c, flags != nullptr ? flags[i] : std::uint8_t{0}, out);
  }
}

void WeightEventDetector::push(std::int64_t t_ns, double grams, const double* cells, std::uint8_t flags,
                               std::vector<WeightEvent>& out) {
  // 1. Drop what cannot be weighed; a time gap means the load was not observed.
  ++stats_.samples;
  bool finite = std::isfinite(grams);
  if (cells != nullptr) {
    for (int k = 0; k < kCells; ++k) finite = finite && std::isfinite(cells[k]);
  }
  if ((flags & kFlagAdcFault) != 0 || !finite) {
    ++stats_.faults;
    return;
  }
  if (have_last_ && t_ns <= last_t_) {
    ++stats_.out_of_order;
    return;
  }
  const bool gap = have_last_ && t_ns - last_t_ > max_gap_ns_;
  const std::int64_t t_before_gap = last_t_;
  last_t_ = t_ns;
  have_last_ = true;
  const std::uint64_t cur = store(t_ns, grams, cells, flags);
  if (gap) {
    ++stats_.gaps;
    segment_start_ = cur;
    if (state_ == DetectorState::Stable) {
      enter_active(cur, true);
      t_start_ = t_before_gap;
    }
  }

  // 2. The statistics of the last settle_window samples (when they are all usable), once.
  Window w{};
  const bool full = cur + 1 >= window_floor() + settle_n_;
  if (full) {
    w = window(cur + 1 - settle_n_, cur);
    if (w.hf > p_.hf_gate_ratio) ++stats_.hf_gated;
  }

  // 3. The state machine.
  switch (state_) {
    case DetectorState::Bootstrap:
      if (full && at_rest(w, 0.0, p_.approach_tol_frac)) {
        rebase(w.first, cur);
        state_ = DetectorState::Stable;
      }
      break;
    case DetectorState::Stable:
      if (at(cur).gated || triggered(cur, full ? &w : nullptr)) {
        enter_active(cur, at(cur).gated);
      } else {
        feed_baseline(cur + 1 > guard_n_ ? cur + 1 - guard_n_ : 0);
        if (full) adapt_noise(w);
      }
      break;
    case DetectorState::Active:
      if (!full) break;
      if (at_rest(w, 0.0, p_.approach_tol_frac)) {
        decide(w, cur, out);
      } else if (!prov_sent_ && p_.provisional_tol_frac > 0.0 && w.first > active_idx_) {
        try_provisional(w, cur, out);
      }
      break;
  }
}

std::uint64_t WeightEventDetector::store(std::int64_t t_ns, double grams, const double* cells, std::uint8_t flags) {
  const std::uint64_t cur = next_++;
  Sample& s = ring_[cur & (kRing - 1)];
  s.t = t_ns;
  s.g = grams;
  if (cells != nullptr) {
    std::copy(cells, cells + kCells, s.c.begin());
  } else {
    s.c.fill(0.0);
    cells_ok_ = false;
  }
  s.gated = (flags & kFlagOverload) != 0 || (p_.use_motion_flag && (flags & kFlagMotion) != 0);
  if (s.gated) {
    ++stats_.gated;
    motion_until_ = cur + 1 + holdoff_n_;
  }
  return cur;
}

std::uint64_t WeightEventDetector::window_floor() const {
  // Windows never reach back past a gap, into the motion hold-off, or out of the ring.
  std::uint64_t lo = std::max(segment_start_, motion_until_);
  if (next_ > kRing) lo = std::max<std::uint64_t>(lo, next_ - kRing);
  return lo;
}

WeightEventDetector::Window WeightEventDetector::window(std::uint64_t first, std::uint64_t last) const {
  // One pass over a short window. Sums are of deviations from the window's first sample, so the
  // variance has no cancellation however heavy the basket (5 kg +- 1 g stays exact).
  Window w{};
  w.first = first;
  w.n = static_cast<std::size_t>(last - first + 1);
  w.n1 = w.n / 3;
  w.n3 = w.n / 3;
  const std::uint64_t end1 = first + w.n1, end2 = last + 1 - w.n3;
  const double ref = at(first).g;
  double s1 = 0.0, s2 = 0.0, s3 = 0.0, ss = 0.0, d2 = 0.0;
  double prev2 = 0.0, prev1 = 0.0;
  for (std::uint64_t i = first; i <= last; ++i) {
    const double d = at(i).g - ref;
    if (i < end1) s1 += d;
    else if (i < end2) s2 += d;
    else s3 += d;
    ss += d * d;
    if (i >= first + 2) d2 += sq(d - 2.0 * prev1 + prev2);
    prev2 = prev1;
    prev1 = d;
  }
  const double n = static_cast<double>(w.n);
  const double sum = s1 + s2 + s3;
  w.mean = ref + sum / n;
  w.m1 = ref + s1 / static_cast<double>(w.n1);
  w.m2 = ref + s2 / static_cast<double>(w.n - w.n1 - w.n3);
  w.m3 = ref + s3 / static_cast<double>(w.n3);
  w.sd = std::sqrt(std::max(ss - sum * sum / n, 0.0) / (n - 1.0));
  // Second differences ignore levels and ramps; for white noise E[d2^2] = 6 sigma^2.
  w.hf = d2 / (n - 2.0) / (6.0 * sigma_ * sigma_);
  return w;
}

bool WeightEventDetector::triggered(std::uint64_t cur, const Window* w) const {
  const std::uint64_t lo = window_floor();
  if (cur + 1 >= lo + kTriggerSamples) {
    double sum = 0.0;
    for (std::uint64_t i = cur + 1 - kTriggerSamples; i <= cur; ++i) sum += at(i).g;
    const double dev = sum / static_cast<double>(kTriggerSamples) - base_;
    if (std::abs(dev) > p_.trigger_sigmas * sigma_ / std::sqrt(static_cast<double>(kTriggerSamples))) return true;
  }
  return w != nullptr && (w->sd > p_.active_std_sigmas * sigma_ || w->hf > p_.hf_gate_ratio);
}

bool WeightEventDetector::at_rest(const Window& w, double rel, double approach_rel) const {
  // Tolerances are noise-based (standard errors of the window statistics) or, when rel > 0,
  // a fraction of the change, whichever is larger.
  const double change = rel * std::abs(w.mean - base_);
  const double n1 = static_cast<double>(w.n1), n2 = static_cast<double>(w.n - w.n1 - w.n3);
  const double trend_se = sigma_ * std::sqrt(2.0 / n1);
  const double curve_se = sigma_ * std::sqrt(1.0 / n2 + 0.5 / n1);
  if (w.sd > std::max(p_.settle_std_sigmas * sigma_, change)) return false;
  if (std::abs(w.m3 - w.m1) > std::max(p_.settle_flat_sigmas * trend_se, change)) return false;
  if (std::abs(w.m2 - 0.5 * (w.m1 + w.m3)) > std::max(p_.settle_flat_sigmas * curve_se, change)) return false;
  return approached(w, std::max(rel, approach_rel));
}

bool WeightEventDetector::approached(const Window& w, double tol_frac) const {
  // The level must be the one the signal approached: the samples just before the window
  // oscillate around it (ring-down) when the load is really at rest, but lie below (or above)
  // it when the window sits on the flat top of a hand's push or on the slow tail of a bump.
  // A mismatch only means "wait"; without a clean window before this one there is no test.
  const std::size_t n = w.n;
  if (w.first < window_floor() + n) return true;
  double pre = 0.0;
  for (std::uint64_t i = w.first - n; i < w.first; ++i) pre += at(i).g;
  pre /= static_cast<double>(n);
  const double tol = std::max(p_.settle_flat_sigmas * sigma_ * std::sqrt(2.0 / static_cast<double>(n)),
                              tol_frac * std::abs(w.mean - base_));
  return std::abs(pre - w.mean) <= tol;
}

void WeightEventDetector::enter_active(std::uint64_t cur, bool by_motion) {
  // t_start: walk back over the run of samples that already departed from the baseline.
  std::uint64_t first = cur;
  if (!by_motion) {
    const std::uint64_t lo = std::max<std::uint64_t>(window_floor(), cur > kBacktrackMax ? cur - kBacktrackMax : 0);
    while (first > lo && std::abs(at(first - 1).g - base_) > kBacktrackSigmas * sigma_) --first;
  }
  // Samples before the departure that the guard still held back are clean: feed them.
  feed_baseline(first > 0 ? first - 1 : 0);
  t_start_ = at(first).t;
  active_idx_ = cur;
  prov_sent_ = false;
  state_ = DetectorState::Active;
  ++stats_.activities;
}

void WeightEventDetector::feed_baseline(std::uint64_t upto_excl) {
  // Running mean over the last baseline_n_ clean samples (an EWMA once full): follows drift.
  if (fed_upto_ + kRing < next_) fed_upto_ = next_ - kRing;
  for (; fed_upto_ < upto_excl; ++fed_upto_) {
    const Sample& s = at(fed_upto_);
    if (s.gated) continue;
    base_n_ = std::min(base_n_ + 1, baseline_n_);
    const double k = 1.0 / static_cast<double>(base_n_);
    base_ += (s.g - base_) * k;
    for (int c = 0; c < kCells; ++c) base_c_[c] += (s.c[c] - base_c_[c]) * k;
  }
}

void WeightEventDetector::rebase(std::uint64_t first, std::uint64_t cur) {
  base_n_ = 0;
  fed_upto_ = first;
  feed_baseline(cur + 1);
}

void WeightEventDetector::adapt_noise(const Window& w) {
  // Called only at rest, i.e. for windows that passed the trigger tests (sd <= active_std_sigmas
  // * noise): a bump never teaches it, and the bound is loose enough for a low start to climb.
  if (adapt_n_ == 0) return;
  double var = sigma_ * sigma_;
  var += (w.sd * w.sd - var) / static_cast<double>(adapt_n_);
  sigma_ = std::clamp(std::sqrt(var), 0.25 * p_.noise_g, 4.0 * p_.noise_g);
}

void WeightEventDetector::decide(const Window& w, std::uint64_t cur, std::vector<WeightEvent>& out) {
  const double delta = w.mean - base_;
  // Standard error: white noise of both windows, plus the residual trend inside the window.
  const double sigma = std::sqrt(sq(sigma_) * (1.0 / static_cast<double>(w.n) +
                                               1.0 / static_cast<double>(std::max<std::size_t>(base_n_, 1))) +
                                 0.25 * sq(w.m3 - w.m1));
  if (std::abs(delta) >= p_.min_delta_g) {
    out.push_back(make_event(WeightEventKind::Settled, w.first, cur, w.mean, sigma));
    ++stats_.settled;
    rebase(w.first, cur);  // the settled window is the new baseline
  } else {
    // A bump, a hand resting briefly, or noise: no change. Keep the baseline; the quiet window
    // re-enters it through the guard (this also re-baselines drift across activities).
    if (prov_sent_) {
      out.push_back(make_event(WeightEventKind::Cancelled, w.first, cur, w.mean, sigma));
      ++stats_.cancelled;
    } else {
      ++stats_.rejected;
    }
    fed_upto_ = w.first;
  }
  state_ = DetectorState::Stable;
}

void WeightEventDetector::try_provisional(const Window& w, std::uint64_t cur, std::vector<WeightEvent>& out) {
  // The settle tests with every tolerance widened to provisional_tol_frac of the change: the
  // ring-down may still be running, but its residual is small against the change. Not while
  // the window vibrates (high-frequency energy) or before it lies wholly inside the activity.
  if (w.hf > p_.hf_gate_ratio || !at_rest(w, p_.provisional_tol_frac, p_.approach_tol_frac)) return;
  // The residual of a ring of amplitude A in the window mean is a fraction of A ~ sqrt(2 (sd^2 - noise^2)).
  const double ring_var = std::max(sq(w.sd) - sq(sigma_), 0.0);
  const double sigma = std::sqrt(sq(sigma_) * (1.0 / static_cast<double>(w.n) +
                                               1.0 / static_cast<double>(std::max<std::size_t>(base_n_, 1))) +
                                 0.5 * ring_var + 0.25 * sq(w.m3 - w.m1));
  if (std::abs(w.mean - base_) < std::max(p_.min_delta_g, 3.0 * sigma)) return;
  out.push_back(make_event(WeightEventKind::Provisional, w.first, cur, w.mean, sigma));
  ++stats_.provisional;
  prov_sent_ = true;
}

WeightEvent WeightEventDetector::make_event(WeightEventKind kind, std::uint64_t first, std::uint64_t cur,
                                            double mean, double sigma) const {
  WeightEvent e;
  e.kind = kind;
  e.t_start_ns = t_start_;
  e.t_settled_ns = at(first).t;
  e.t_decided_ns = at(cur).t;
  e.delta_g = mean - base_;
  e.sigma_g = sigma;
  e.level_g = mean;
  e.has_cells = cells_ok_;
  if (cells_ok_) {
    std::array<double, kCells> m{};
    for (std::uint64_t i = first; i <= cur; ++i)
      for (int c = 0; c < kCells; ++c) m[c] += at(i).c[c];
    const double n = static_cast<double>(cur - first + 1);
    for (int c = 0; c < kCells; ++c) e.cell_delta_g[c] = m[c] / n - base_c_[c];
    const auto& d = e.cell_delta_g;
    const double total = d[0] + d[1] + d[2] + d[3];
    e.cop_u = std::abs(total) > 1e-9 ? (d[1] + d[2]) / total : std::nan("");
    e.cop_v = std::abs(total) > 1e-9 ? (d[2] + d[3]) / total : std::nan("");
  }
  return e;
}

}  // namespace caper::scale
