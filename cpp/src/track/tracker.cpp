// Tracker::update as ByteTrack's numbered steps, with the cart-specific cues added:
//   1. predict            Kalman step for every live track (resting lost tracks stay put)
//   2. split              detections into high-score and low-score sets
//   3. first association  high-score detections <-> confirmed tracks (tracked and lost),
//                         fused IoU + appearance cost, gated; lost tracks can be re-identified
//   4. second association low-score detections <-> still-unmatched confirmed tracks, IoU only
//                         (unlike ByteTrack, lost tracks too: an item emerging from under a
//                         hand is first seen partly, with a low score, where it was last seen)
//   5. unconfirmed        tentative tracks <-> remaining high-score detections
//   6. new tracks         from remaining detections scoring above new_track_score_threshold
//   7. lost / removal     unmatched tracks become lost; lost ones expire after a rest-aware,
//                         zone-aware timeout; unmatched tentative tracks are dropped
//   8. duplicates         a tracked track sitting on a lost one of the same look is merged
//   9. rest and zones     rest detection, zone hysteresis, zone transitions
//  10. output             confirmed tracks matched in this frame
#include "caper/tracker.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

namespace caper::track {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

using Box = std::array<double, 4>;  // x1, y1, x2, y2

Box det_box(const FrameInput& in, int32_t i) {
  const float* b = in.xyxy + 4 * static_cast<std::size_t>(i);
  return {b[0], b[1], b[2], b[3]};
}

std::array<double, 4> to_xywh(const Box& b) {
  return {0.5 * (b[0] + b[2]), 0.5 * (b[1] + b[3]), b[2] - b[0], b[3] - b[1]};
}

Box kf_box(const BoxState& s) {
  const double w = std::max(s.mean[2], 1e-3), h = std::max(s.mean[3], 1e-3);
  return {s.mean[0] - 0.5 * w, s.mean[1] - 0.5 * h, s.mean[0] + 0.5 * w, s.mean[1] + 0.5 * h};
}

double iou(const Box& a, const Box& b) {
  const double iw = std::min(a[2], b[2]) - std::max(a[0], b[0]);
  const double ih = std::min(a[3], b[3]) - std::max(a[1], b[1]);
  if (iw <= 0.0 || ih <= 0.0) return 0.0;
  const double inter = iw * ih;
  const double uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return uni > 0.0 ? inter / uni : 0.0;
}

double norm2(double x, double y) { return std::sqrt(x * x + y * y); }  // hypot is slow

double diagonal(const Box& b) { return norm2(b[2] - b[0], b[3] - b[1]); }

double cosine_distance(const float* a, const float* b, std::size_t dim) {
  float dot = 0.f;
  for (std::size_t k = 0; k < dim; ++k) dot += a[k] * b[k];
  return std::clamp(1.0 - static_cast<double>(dot), 0.0, 2.0);
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

[[noreturn]] void bad_param(const char* name, double value, const char* expected) {
  throw std::invalid_argument(std::string("tracker parameter ") + name + " = " + num(value) +
                              ": expected " + expected);
}

void check_params(const TrackerParams& p) {
  auto unit = [](const char* name, double v) {
    if (!(v >= 0.0 && v <= 1.0)) bad_param(name, v, "a number in [0, 1]");
  };
  auto positive = [](const char* name, double v) {
    if (!(v > 0.0) || std::isinf(v)) bad_param(name, v, "a finite number > 0");
  };
  auto non_negative = [](const char* name, double v) {
    if (!(v >= 0.0) || std::isinf(v)) bad_param(name, v, "a finite number >= 0");
  };
  unit("high_score_threshold", p.high_score_threshold);
  unit("low_score_threshold", p.low_score_threshold);
  if (p.low_score_threshold > p.high_score_threshold)
    bad_param("low_score_threshold", p.low_score_threshold, "<= high_score_threshold");
  unit("new_track_score_threshold", p.new_track_score_threshold);
  if (!(p.match_cost_limit > 0.0 && p.match_cost_limit <= 2.0))
    bad_param("match_cost_limit", p.match_cost_limit, "a number in (0, 2]");
  unit("min_iou", p.min_iou);
  unit("low_score_min_iou", p.low_score_min_iou);
  unit("unconfirmed_min_iou", p.unconfirmed_min_iou);
  unit("appearance_weight", p.appearance_weight);
  if (!(p.appearance_gate >= 0.0 && p.appearance_gate <= 2.0))
    bad_param("appearance_gate", p.appearance_gate, "a cosine distance in [0, 2]");
  if (!(p.rest_appearance_gate >= 0.0 && p.rest_appearance_gate <= 2.0))
    bad_param("rest_appearance_gate", p.rest_appearance_gate, "a cosine distance in [0, 2]");
  if (!(p.reid_max_appearance_distance >= 0.0 && p.reid_max_appearance_distance <= 2.0))
    bad_param("reid_max_appearance_distance", p.reid_max_appearance_distance, "a cosine distance in [0, 2]");
  non_negative("reid_max_displacement", p.reid_max_displacement);
  if (!(p.embedding_momentum >= 0.0 && p.embedding_momentum < 1.0))
    bad_param("embedding_momentum", p.embedding_momentum, "a number in [0, 1)");
  unit("duplicate_iou", p.duplicate_iou);
  if (p.confirm_hits < 1) bad_param("confirm_hits", p.confirm_hits, "an integer >= 1");
  non_negative("lost_timeout_s", p.lost_timeout_s);
  non_negative("outside_lost_timeout_s", p.outside_lost_timeout_s);
  non_negative("rest_lost_timeout_s", p.rest_lost_timeout_s);
  non_negative("rest_max_displacement", p.rest_max_displacement);
  non_negative("rest_min_duration_s", p.rest_min_duration_s);
  positive("frame_period_s", p.frame_period_s);
  positive("kalman_position_std", p.kalman_position_std);
  positive("kalman_velocity_std", p.kalman_velocity_std);
  positive("kalman_measurement_std", p.kalman_measurement_std);
  if (p.basket_polygon.size() % 2 != 0 || (!p.basket_polygon.empty() && p.basket_polygon.size() < 6))
    bad_param("basket_polygon (number of coordinates)", static_cast<double>(p.basket_polygon.size()),
              "an even count of at least 6 (three or more x, y vertices), or none");
  for (double c : p.basket_polygon)
    if (!std::isfinite(c)) bad_param("basket_polygon (vertex coordinate)", c, "finite pixels");
  if (!(p.basket_depth_min_m >= 0.0)) bad_param("basket_depth_min_m", p.basket_depth_min_m, "a number >= 0");
  if (!(p.basket_depth_max_m >= p.basket_depth_min_m))
    bad_param("basket_depth_max_m", p.basket_depth_max_m, ">= basket_depth_min_m");
  non_negative("zone_enter_dwell_s", p.zone_enter_dwell_s);
  non_negative("zone_leave_dwell_s", p.zone_leave_dwell_s);
  if (p.zone_min_frames < 1) bad_param("zone_min_frames", p.zone_min_frames, "an integer >= 1");
  positive("sku_temperature", p.sku_temperature);
  positive("sku_half_life_s", p.sku_half_life_s);
  non_negative("sku_evidence_span", p.sku_evidence_span);
  if (p.sku_top_k < 1 || p.sku_top_k > 64) bad_param("sku_top_k", p.sku_top_k, "an integer in 1..64");
}

int64_t seconds_to_ns(double s) { return static_cast<int64_t>(std::llround(s * 1e9)); }

}  // namespace

void TrackTable::clear() {
  track_id.clear();
  xyxy.clear();
  score.clear();
  class_id.clear();
  state.clear();
  zone.clear();
  at_rest.clear();
  det_index.clear();
  sku_ids.clear();
  sku_prob.clear();
  t_first_ns.clear();
  t_last_ns.clear();
}

Tracker::Tracker(TrackerParams params) : p_(std::move(params)) {
  check_params(p_);
  kf_.position_std = p_.kalman_position_std;
  kf_.velocity_std = p_.kalman_velocity_std;
  kf_.measurement_std = p_.kalman_measurement_std;
  zone_.polygon = p_.basket_polygon;
  zone_.depth_min_m = p_.basket_depth_min_m;
  zone_.depth_max_m = p_.basket_depth_max_m;
}

void Tracker::reset() {
  tracks_.clear();
  next_id_ = 1;
  next_serial_ = 0;
  frame_count_ = 0;
  t_ns_ = 0;
  embedding_dim_ = 0;
  n_sku_ = 0;
  out_.clear();
  transitions_.clear();
}

// ---------------------------------------------------------------------------------------------
// Input checks: everything is checked before any state changes.
// ---------------------------------------------------------------------------------------------

void Tracker::validate(const FrameInput& in) const {
  auto box = [](const float* b) {
    return "(" + num(b[0]) + ", " + num(b[1]) + ", " + num(b[2]) + ", " + num(b[3]) + ")";
  };
  for (std::size_t i = 0; i < in.n; ++i) {
    const float* b = in.xyxy + 4 * i;
    if (!(std::isfinite(b[0]) && std::isfinite(b[1]) && std::isfinite(b[2]) && std::isfinite(b[3])))
      throw std::invalid_argument("xyxy[" + std::to_string(i) + "] = " + box(b) + ": expected finite pixel coordinates");
    if (b[2] < b[0] || b[3] < b[1])
      throw std::invalid_argument("xyxy[" + std::to_string(i) + "] = " + box(b) +
                                  ": negative width or height (expected x2 >= x1 and y2 >= y1)");
    if (!std::isfinite(in.score[i]))
      throw std::invalid_argument("score[" + std::to_string(i) + "] = " + num(in.score[i]) + ": expected a finite score in [0, 1]");
    if (in.depth_m && (in.depth_m[i] < 0.f || std::isinf(in.depth_m[i])))
      throw std::invalid_argument("depth_m[" + std::to_string(i) + "] = " + num(in.depth_m[i]) +
                                  ": expected metres >= 0, or NaN for unknown");
  }
  if (in.embedding) {
    if (embedding_dim_ != 0 && in.embedding_dim != embedding_dim_)
      throw std::invalid_argument("embedding has dimension " + std::to_string(in.embedding_dim) + ": expected " +
                                  std::to_string(embedding_dim_) + " (fixed by the first frame that had embeddings)");
    if (in.embedding_dim == 0) throw std::invalid_argument("embedding has dimension 0: expected at least 1");
    for (std::size_t k = 0; k < in.n * in.embedding_dim; ++k)
      if (!std::isfinite(in.embedding[k]))
        throw std::invalid_argument("embedding[" + std::to_string(k / in.embedding_dim) + ", " +
                                    std::to_string(k % in.embedding_dim) + "] = " + num(in.embedding[k]) +
                                    ": expected finite values");
  }
  if (in.sku_similarity) {
    if (n_sku_ != 0 && in.n_sku != n_sku_)
      throw std::invalid_argument("sku_similarity has " + std::to_string(in.n_sku) + " columns: expected " +
                                  std::to_string(n_sku_) + " (fixed by the first frame that had similarities)");
    if (in.n_sku == 0) throw std::invalid_argument("sku_similarity has 0 columns: expected at least 1 SKU");
    for (std::size_t k = 0; k < in.n * in.n_sku; ++k)
      if (!std::isfinite(in.sku_similarity[k]))
        throw std::invalid_argument("sku_similarity[" + std::to_string(k / in.n_sku) + ", " +
                                    std::to_string(k % in.n_sku) + "] = " + num(in.sku_similarity[k]) +
                                    ": expected finite values");
  }
  if (in.has_t && frame_count_ > 0 && in.t_ns <= t_ns_)
    throw std::invalid_argument("t_ns = " + std::to_string(in.t_ns) + ": expected a time after the previous frame's " +
                                std::to_string(t_ns_));
}

int64_t Tracker::resolve_time(const FrameInput& in) const {
  if (in.has_t) return in.t_ns;
  return frame_count_ == 0 ? 0 : t_ns_ + seconds_to_ns(p_.frame_period_s);
}

// ---------------------------------------------------------------------------------------------
// The frame
// ---------------------------------------------------------------------------------------------

void Tracker::update(const FrameInput& in) {
  validate(in);
  const int64_t t = resolve_time(in);
  const double dt_steps = frame_count_ == 0 ? 1.0 : static_cast<double>(t - t_ns_) * 1e-9 / p_.frame_period_s;
  if (in.embedding) embedding_dim_ = in.embedding_dim;
  if (in.sku_similarity) n_sku_ = in.n_sku;
  t_ns_ = t;
  transitions_.clear();
  for (Track& tr : tracks_) {
    tr.matched = false;
    tr.det_index = -1;
  }

  predict(dt_steps);                                    // 1
  split_detections(in);                                 // 2

  pool_.clear();                                        // 3
  unconfirmed_.clear();
  for (int32_t k = 0; k < static_cast<int32_t>(tracks_.size()); ++k)
    (tracks_[k].state == TrackState::Tentative ? unconfirmed_ : pool_).push_back(k);
  associate(Stage::First, pool_, high_, in);

  associate(Stage::LowScore, pool_, low_, in);          // 4

  associate(Stage::Unconfirmed, unconfirmed_, high_, in);  // 5
  start_tracks(high_, in);                              // 6
  mark_lost_and_expire();                               // 7
  suppress_duplicates();                                // 8
  update_rest_and_zones();                              // 9
  emit_output();                                        // 10
  ++frame_count_;
}

void Tracker::predict(double dt_steps) {
  for (Track& tr : tracks_) {
    if (tr.state == TrackState::Lost) {
      // A lost box keeps its size; a lost item at rest keeps its place too (its velocity
      // estimate is noise, and an occluded item in the basket does not move by itself).
      tr.kf.mean[6] = tr.kf.mean[7] = 0.0;
      if (tr.at_rest) tr.kf.mean[4] = tr.kf.mean[5] = 0.0;
    }
    kf_.predict(tr.kf, dt_steps);
  }
}

void Tracker::split_detections(const FrameInput& in) {
  high_.clear();
  low_.clear();
  for (int32_t i = 0; i < static_cast<int32_t>(in.n); ++i) {
    if (in.score[i] >= p_.high_score_threshold) {
      high_.push_back(i);
    } else if (in.score[i] >= p_.low_score_threshold) {
      low_.push_back(i);
    }
  }
  det_has_emb_.assign(in.n, 0);
  if (!in.embedding) return;
  const std::size_t dim = in.embedding_dim;
  det_unit_emb_.resize(in.n * dim);
  for (std::size_t i = 0; i < in.n; ++i) {
    const float* src = in.embedding + i * dim;
    double norm = 0.0;
    for (std::size_t k = 0; k < dim; ++k) norm += static_cast<double>(src[k]) * src[k];
    if (norm <= 0.0) continue;  // an all-zero embedding carries no appearance
    const auto inv = static_cast<float>(1.0 / std::sqrt(norm));
    for (std::size_t k = 0; k < dim; ++k) det_unit_emb_[i * dim + k] = src[k] * inv;
    det_has_emb_[i] = 1;
  }
}

// IoU of box a with every box of the stage (structure of arrays); branch-free so it vectorises.
void iou_row(const Box& a, std::size_t n, const double* __restrict x1, const double* __restrict y1,
             const double* __restrict x2, const double* __restrict y2, const double* __restrict area,
             double* __restrict out) {
  const double ax1 = a[0], ay1 = a[1], ax2 = a[2], ay2 = a[3];
  const double area_a = (ax2 - ax1) * (ay2 - ay1);
  // Value selects rather than std::min/max (which return references): these if-convert.
  for (std::size_t c = 0; c < n; ++c) {
    const double left = ax1 > x1[c] ? ax1 : x1[c], right = ax2 < x2[c] ? ax2 : x2[c];
    const double top = ay1 > y1[c] ? ay1 : y1[c], bottom = ay2 < y2[c] ? ay2 : y2[c];
    const double iw = right - left > 0.0 ? right - left : 0.0;
    const double ih = bottom - top > 0.0 ? bottom - top : 0.0;
    const double inter = iw * ih;
    const double uni = area_a + area[c] - inter;
    out[c] = inter / (uni > 1e-12 ? uni : 1e-12);  // degenerate boxes: inter is 0 too
  }
}

// Costs of pairing track t with each of the stage's detections; +inf where a gate forbids it.
//   first stage:  (1 - w) * (1 - IoU) + w * cosine distance   (1 - IoU without embeddings),
//                 forbidden below min_iou unless a lost track is re-identified by appearance;
//   low-score:    1 - IoU (their crops are unreliable, so no appearance);
//   unconfirmed:  1 - IoU.
// Every stage forbids other classes (class_gating) and, except the low-score one, pairs
// whose appearance differs by more than appearance_gate. A track at rest is also held to
// rest_appearance_gate in every stage, the low-score one included: a resting product's look
// is steady, and a different product put down on or over it (often scored low while the hand
// still covers it) must start its own track instead of continuing the resting one's.
void Tracker::fill_cost_row(Stage stage, const Track& t, const std::vector<int32_t>& dets,
                            const FrameInput& in, double* out) {
  const std::size_t C = dets.size();
  const bool lost = t.state == TrackState::Lost;
  iou_row(kf_box(t.kf), C, sx1_.data(), sy1_.data(), sx2_.data(), sy2_.data(), sarea_.data(), iou_row_.data());
  if (lost) {
    // A lost track is also compared where it was last seen: the prediction of an occluded
    // track drifts, the item (in a basket) usually does not.
    iou_row(t.last_box, C, sx1_.data(), sy1_.data(), sx2_.data(), sy2_.data(), sarea_.data(), iou_last_.data());
    for (std::size_t c = 0; c < C; ++c) iou_row_[c] = std::max(iou_row_[c], iou_last_[c]);
  }
  const double stage_min_iou = stage == Stage::First         ? p_.min_iou
                               : stage == Stage::LowScore    ? p_.low_score_min_iou
                                                             : p_.unconfirmed_min_iou;
  const bool may_reid = stage == Stage::First && lost && !t.embedding.empty();
  const double reach = p_.reid_max_displacement * diagonal(t.last_box);
  const bool rest_gated = t.at_rest && p_.rest_appearance_gate < 2.0;  // 2: off (no cosine exceeds it)
  for (std::size_t c = 0; c < C; ++c) {
    const int32_t det = dets[c];
    double overlap = iou_row_[c];
    if ((overlap < stage_min_iou && !may_reid) || (p_.class_gating && t.class_id != in.class_id[det])) {
      out[c] = kInf;
      continue;
    }
    const bool has_app = (stage != Stage::LowScore || rest_gated) && !t.embedding.empty() && det_has_emb_[det] != 0;
    const double app = has_app ? cosine_distance(t.embedding.data(), det_unit_emb_.data() + det * embedding_dim_,
                                                 embedding_dim_)
                               : 0.0;
    if (has_app && ((rest_gated && app > p_.rest_appearance_gate) || (stage != Stage::LowScore && app > p_.appearance_gate))) {
      out[c] = kInf;
      continue;
    }
    if (stage != Stage::First) {
      out[c] = 1.0 - overlap;
      continue;
    }
    if (overlap < p_.min_iou) {
      // Re-identification: a lost track re-found by appearance near where it was last seen.
      const double dx = 0.5 * (sx1_[c] + sx2_[c] - t.last_box[0] - t.last_box[2]);
      const double dy = 0.5 * (sy1_[c] + sy2_[c] - t.last_box[1] - t.last_box[3]);
      if (!has_app || app > p_.reid_max_appearance_distance || norm2(dx, dy) > reach) {
        out[c] = kInf;
        continue;
      }
      overlap = 0.0;
    }
    out[c] = has_app ? (1.0 - p_.appearance_weight) * (1.0 - overlap) + p_.appearance_weight * app : 1.0 - overlap;
  }
}

// Solve one association stage; on return `tracks` and `dets` hold only the unmatched ones.
void Tracker::associate(Stage stage, std::vector<int32_t>& tracks, std::vector<int32_t>& dets,
                        const FrameInput& in) {
  if (tracks.empty() || dets.empty()) return;
  const std::size_t R = tracks.size(), C = dets.size();
  for (auto* v : {&sx1_, &sy1_, &sx2_, &sy2_, &sarea_, &iou_row_, &iou_last_}) v->resize(C);
  for (std::size_t c = 0; c < C; ++c) {
    const float* b = in.xyxy + 4 * static_cast<std::size_t>(dets[c]);
    sx1_[c] = b[0];
    sy1_[c] = b[1];
    sx2_[c] = b[2];
    sy2_[c] = b[3];
    sarea_[c] = (sx2_[c] - sx1_[c]) * (sy2_[c] - sy1_[c]);
  }
  cost_.resize(R * C);
  for (std::size_t r = 0; r < R; ++r) fill_cost_row(stage, tracks_[tracks[r]], dets, in, cost_.data() + r * C);
  double limit = p_.match_cost_limit;
  if (stage == Stage::LowScore) limit = 1.0 - p_.low_score_min_iou;
  if (stage == Stage::Unconfirmed) limit = 1.0 - p_.unconfirmed_min_iou;
  // A pair exactly at the limit is not worth matching; nudging keeps "IoU >= min" inclusive.
  limit = std::nextafter(limit, kInf);
  row_to_col_.resize(R);
  linear_assignment(cost_.data(), R, C, limit, row_to_col_.data(), ws_);
  left_tracks_.clear();
  std::vector<uint8_t>& det_used = det_has_match_;
  det_used.assign(C, 0);
  for (std::size_t r = 0; r < R; ++r) {
    const int32_t c = row_to_col_[r];
    if (c < 0) {
      left_tracks_.push_back(tracks[r]);
      continue;
    }
    det_used[c] = 1;
    const bool reliable = in.score[dets[c]] >= p_.high_score_threshold;
    apply_match(tracks_[tracks[r]], dets[c], reliable, in);
  }
  left_dets_.clear();
  for (std::size_t c = 0; c < C; ++c)
    if (!det_used[c]) left_dets_.push_back(dets[c]);
  tracks.swap(left_tracks_);
  dets.swap(left_dets_);
}

void Tracker::apply_match(Track& t, int32_t det, bool reliable, const FrameInput& in) {
  const Box b = det_box(in, det);
  const std::array<double, 4> z = to_xywh(b);
  kf_.update(t.kf, z.data());
  t.last_box = b;
  t.score = in.score[det];
  t.det_index = det;
  t.matched = true;
  t.t_last_ns = t_ns_;
  ++t.hits;
  const double depth = in.depth_m ? static_cast<double>(in.depth_m[det]) : std::nan("");
  t.observed_inside = zone_.contains(z[0], z[1], depth);
  if (t.state == TrackState::Lost) t.state = TrackState::Tracked;
  if (t.state == TrackState::Tentative && t.hits >= p_.confirm_hits) {
    t.state = TrackState::Tracked;
    t.id = next_id_++;
  }
  // Low-score detections are usually partly hidden: their appearance would pollute the
  // track's embedding and SKU evidence, so only reliable ones feed them.
  if (!reliable) return;
  if (det_has_emb_[det]) {
    const float* f = det_unit_emb_.data() + det * embedding_dim_;
    if (t.embedding.empty()) {
      t.embedding.assign(f, f + embedding_dim_);
    } else {
      const auto m = static_cast<float>(p_.embedding_momentum);
      double norm = 0.0;
      for (std::size_t k = 0; k < embedding_dim_; ++k) {
        t.embedding[k] = m * t.embedding[k] + (1.f - m) * f[k];
        norm += static_cast<double>(t.embedding[k]) * t.embedding[k];
      }
      const auto inv = static_cast<float>(norm > 0.0 ? 1.0 / std::sqrt(norm) : 0.0);
      for (float& e : t.embedding) e *= inv;
    }
  }
  if (in.sku_similarity) {
    // log-softmax of the similarities at the temperature, added to the decayed evidence.
    const float* s = in.sku_similarity + static_cast<std::size_t>(det) * n_sku_;
    const double inv_t = 1.0 / p_.sku_temperature;
    double mx = -kInf;
    for (std::size_t k = 0; k < n_sku_; ++k) mx = std::max(mx, s[k] * inv_t);
    double sum = 0.0;
    for (std::size_t k = 0; k < n_sku_; ++k) sum += std::exp(s[k] * inv_t - mx);
    const double lse = mx + std::log(sum);
    double decay = 0.0;
    if (t.sku_log_evidence.empty()) {
      t.sku_log_evidence.assign(n_sku_, 0.f);
    } else {
      decay = std::exp2(-static_cast<double>(t_ns_ - t.sku_t_ns) * 1e-9 / p_.sku_half_life_s);
    }
    double best = -kInf;
    for (std::size_t k = 0; k < n_sku_; ++k) {
      t.sku_log_evidence[k] = static_cast<float>(decay * t.sku_log_evidence[k] + (s[k] * inv_t - lse));
      best = std::max(best, static_cast<double>(t.sku_log_evidence[k]));
    }
    // Bounded belief: a SKU more than the span behind the leader keeps only the logarithm of
    // the rest of its deficit, so a product that takes over a track (a hand-over, a product put
    // where another lay) overturns it in a few frames instead of having to repay seconds of
    // correlated frames of the old product. The compression is monotone: the runners-up keep
    // their order (the fusion reads a box's second look as a product hidden under it).
    if (p_.sku_evidence_span > 0.0) {
      const double floor = best - p_.sku_evidence_span;
      for (float& v : t.sku_log_evidence)
        if (v < floor) v = static_cast<float>(floor - std::log1p(floor - v));
    }
    t.sku_t_ns = t_ns_;
    update_sku_summary(t);
  }
}

void Tracker::update_sku_summary(Track& t) const {
  const std::vector<float>& L = t.sku_log_evidence;
  const auto k = static_cast<std::size_t>(std::min<std::size_t>(p_.sku_top_k, L.size()));
  double mx = -kInf;
  for (float v : L) mx = std::max(mx, static_cast<double>(v));
  double sum = 0.0;
  for (float v : L) sum += std::exp(v - mx);
  const double lse = mx + std::log(sum);
  t.sku_top_ids.clear();
  t.sku_top_prob.clear();
  // k is small (a handful): repeated selection beats sorting every SKU.
  for (std::size_t r = 0; r < k; ++r) {
    int32_t best = -1;
    for (std::size_t s = 0; s < L.size(); ++s) {
      const auto id = static_cast<int32_t>(s);
      if (std::find(t.sku_top_ids.begin(), t.sku_top_ids.end(), id) != t.sku_top_ids.end()) continue;
      if (best < 0 || L[s] > L[best]) best = id;
    }
    t.sku_top_ids.push_back(best);
    t.sku_top_prob.push_back(static_cast<float>(std::exp(L[best] - lse)));
  }
}

void Tracker::start_tracks(const std::vector<int32_t>& dets, const FrameInput& in) {
  for (int32_t det : dets) {
    if (in.score[det] < p_.new_track_score_threshold) continue;
    Track t;
    t.serial = next_serial_++;
    t.class_id = in.class_id[det];
    const std::array<double, 4> z = to_xywh(det_box(in, det));
    t.kf = kf_.initiate(z.data());
    t.t_first_ns = t_ns_;
    t.state = TrackState::Tentative;
    // Like ByteTrack, tracks born in the very first frame are confirmed at once.
    const bool confirm_now = frame_count_ == 0 || p_.confirm_hits <= 1;
    t.hits = 0;
    tracks_.push_back(std::move(t));
    Track& added = tracks_.back();
    apply_match(added, det, true, in);
    if (confirm_now && added.state == TrackState::Tentative) {
      added.state = TrackState::Tracked;
      added.id = next_id_++;
    }
  }
}

bool Tracker::has_zone(int32_t class_id) const {
  return p_.zone_class_ids.empty() ||
         std::find(p_.zone_class_ids.begin(), p_.zone_class_ids.end(), class_id) != p_.zone_class_ids.end();
}

double Tracker::timeout_s(const Track& t) const {
  if (t.zone.in_basket()) return t.at_rest ? p_.rest_lost_timeout_s : p_.lost_timeout_s;
  if (t.zone.zone == Zone::Entering) return p_.lost_timeout_s;
  return p_.outside_lost_timeout_s;
}

void Tracker::mark_lost_and_expire() {
  for (Track& t : tracks_) {
    if (t.matched) continue;
    if (t.state == TrackState::Tentative) {
      t.state = TrackState::Removed;
      continue;
    }
    if (t.state == TrackState::Tracked) {
      t.state = TrackState::Lost;
      t.hits = 0;
    }
    if (t.state == TrackState::Lost && static_cast<double>(t_ns_ - t.t_last_ns) * 1e-9 > timeout_s(t)) {
      if (t.zone.in_basket())
        transitions_.push_back({TransitionKind::ExpiredInBasket, t.id, t.class_id, t.t_last_ns, t_ns_});
      t.state = TrackState::Removed;
    }
  }
  tracks_.erase(std::remove_if(tracks_.begin(), tracks_.end(),
                               [](const Track& t) { return t.state == TrackState::Removed; }),
                tracks_.end());
}

void Tracker::suppress_duplicates() {
  pool_.clear();  // the lost tracks (pool_ is free again after the associations)
  for (int32_t k = 0; k < static_cast<int32_t>(tracks_.size()); ++k)
    if (tracks_[k].state == TrackState::Lost) pool_.push_back(k);
  if (pool_.empty()) return;
  bool removed = false;
  for (Track& a : tracks_) {
    if (a.state != TrackState::Tracked || !a.matched) continue;
    const Box box_a = kf_box(a.kf);
    for (int32_t k : pool_) {
      Track& b = tracks_[k];
      if (b.state != TrackState::Lost) continue;
      if (p_.class_gating && a.class_id != b.class_id) continue;
      if (iou(box_a, kf_box(b.kf)) <= p_.duplicate_iou && iou(box_a, b.last_box) <= p_.duplicate_iou) continue;
      if (!a.embedding.empty() && !b.embedding.empty() &&
          cosine_distance(a.embedding.data(), b.embedding.data(), embedding_dim_) > p_.appearance_gate)
        continue;  // two different items stacked on each other are not duplicates
      const bool b_older = b.t_first_ns < a.t_first_ns || (b.t_first_ns == a.t_first_ns && b.serial < a.serial);
      if (b_older) {
        // The older (lost) identity takes over this frame's observation.
        b.kf = a.kf;
        b.last_box = a.last_box;
        b.score = a.score;
        b.det_index = a.det_index;
        b.matched = true;
        b.state = TrackState::Tracked;
        b.t_last_ns = a.t_last_ns;
        b.hits = a.hits;
        b.observed_inside = a.observed_inside;
        if (b.sku_log_evidence.empty()) {
          b.sku_log_evidence = a.sku_log_evidence;
        } else if (!a.sku_log_evidence.empty()) {
          for (std::size_t s = 0; s < b.sku_log_evidence.size(); ++s) b.sku_log_evidence[s] += a.sku_log_evidence[s];
        }
        if (!b.sku_log_evidence.empty()) {
          b.sku_t_ns = t_ns_;
          update_sku_summary(b);
        }
        a.state = TrackState::Removed;
        removed = true;
        break;
      }
      b.state = TrackState::Removed;
      removed = true;
    }
  }
  if (removed) {
    tracks_.erase(std::remove_if(tracks_.begin(), tracks_.end(),
                                 [](const Track& t) { return t.state == TrackState::Removed; }),
                  tracks_.end());
  }
}

void Tracker::update_rest_and_zones() {
  const int64_t rest_ns = seconds_to_ns(p_.rest_min_duration_s);
  const int64_t enter_ns = seconds_to_ns(p_.zone_enter_dwell_s);
  const int64_t leave_ns = seconds_to_ns(p_.zone_leave_dwell_s);
  for (Track& t : tracks_) {
    if (t.state != TrackState::Tracked || !t.matched) continue;
    // Rest from observations, not the Kalman velocity (which decays slowly after a fast stop):
    // at rest once the detected centre has stayed near where it settled for long enough. The
    // settle point is the mean of the observations since settling (a single jittered box would
    // be a noisy anchor), and one stray observation does not restart the clock.
    const Box& b = t.last_box;
    const double cx = 0.5 * (b[0] + b[2]), cy = 0.5 * (b[1] + b[3]);
    const bool near = t.settled && norm2(cx - t.settle_x, cy - t.settle_y) <= p_.rest_max_displacement * diagonal(b);
    if (near) {
      t.settle_strikes = 0;
      ++t.settle_count;
      t.settle_x += (cx - t.settle_x) / t.settle_count;
      t.settle_y += (cy - t.settle_y) / t.settle_count;
    } else if (!t.settled || ++t.settle_strikes >= 2) {
      t.settled = true;
      t.settle_x = cx;
      t.settle_y = cy;
      t.settle_count = 1;
      t.settle_strikes = 0;
      t.settle_since_ns = t_ns_;
    }
    t.at_rest = t_ns_ - t.settle_since_ns >= rest_ns;
    if (!has_zone(t.class_id)) continue;
    TransitionKind kind;
    if (t.zone.observe(t.observed_inside, t_ns_, enter_ns, leave_ns, p_.zone_min_frames, kind))
      transitions_.push_back({kind, t.id, t.class_id, t.zone.since_ns, t_ns_});
  }
}

void TrackTable::resize(std::size_t rows, std::size_t top_k) {
  track_id.resize(rows);
  xyxy.resize(4 * rows);
  score.resize(rows);
  class_id.resize(rows);
  state.resize(rows);
  zone.resize(rows);
  at_rest.resize(rows);
  det_index.resize(rows);
  sku_ids.resize(top_k * rows);
  sku_prob.resize(top_k * rows);
  t_first_ns.resize(rows);
  t_last_ns.resize(rows);
}

void Tracker::write_row(TrackTable& table, std::size_t r, const Track& t) const {
  const auto k = static_cast<std::size_t>(p_.sku_top_k);
  table.track_id[r] = t.id;
  const Box b = kf_box(t.kf);
  for (int c = 0; c < 4; ++c) table.xyxy[4 * r + c] = static_cast<float>(b[c]);
  table.score[r] = t.score;
  table.class_id[r] = t.class_id;
  table.state[r] = static_cast<uint8_t>(t.state);
  table.zone[r] = static_cast<uint8_t>(t.zone.zone);
  table.at_rest[r] = t.at_rest ? 1 : 0;
  table.det_index[r] = t.matched ? t.det_index : -1;
  for (std::size_t q = 0; q < k; ++q) {
    const bool has = q < t.sku_top_ids.size();
    table.sku_ids[k * r + q] = has ? t.sku_top_ids[q] : -1;
    table.sku_prob[k * r + q] = has ? t.sku_top_prob[q] : 0.f;
  }
  table.t_first_ns[r] = t.t_first_ns;
  table.t_last_ns[r] = t.t_last_ns;
}

template <typename Keep>
void Tracker::fill_table(TrackTable& table, Keep keep) const {
  std::size_t rows = 0;
  for (const Track& t : tracks_) rows += keep(t) ? 1 : 0;
  table.resize(rows, static_cast<std::size_t>(p_.sku_top_k));
  std::size_t r = 0;
  for (const Track& t : tracks_)
    if (keep(t)) write_row(table, r++, t);
}

void Tracker::emit_output() {
  fill_table(out_, [](const Track& t) { return t.state == TrackState::Tracked && t.matched; });
}

void Tracker::all_tracks(TrackTable& table, bool include_tentative) const {
  fill_table(table, [include_tentative](const Track& t) {
    return t.state == TrackState::Tracked || t.state == TrackState::Lost ||
           (include_tentative && t.state == TrackState::Tentative);
  });
}

}  // namespace caper::track
