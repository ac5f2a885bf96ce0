// Basket tracker: ByteTrack's two-stage association plus appearance, rest-aware lifetimes,
// basket zones and a per-track SKU posterior. The parameters are documented, with their
// trade-offs, in caper_edge/config.py (TrackerConfig) and docs/tracker.md; units are in the
// names' comments below.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "caper/assignment.hpp"
#include "caper/basket_zone.hpp"
#include "caper/kalman.hpp"

namespace caper::track {

struct TrackerParams {
  // Detections
  double high_score_threshold = 0.6;       // score >= this: first association (0..1)
  double low_score_threshold = 0.1;        // score below this is ignored (0..1)
  double new_track_score_threshold = 0.7;  // min score of an unmatched detection to start a track
  // Association
  double match_cost_limit = 0.8;           // first stage: max fused cost of a match (0..2)
  double min_iou = 0.1;                    // motion gate of the first stage (IoU, 0..1)
  double low_score_min_iou = 0.5;          // second stage (low-score detections): min IoU
  double unconfirmed_min_iou = 0.3;        // tentative tracks: min IoU with a detection
  double appearance_weight = 0.5;          // weight of the cosine distance in the fused cost
  double appearance_gate = 0.4;            // cosine distance above which a pair is forbidden
  double rest_appearance_gate = 2.0;       // ... for a track at rest, in every stage (low-score too); 2 = off
  double reid_max_appearance_distance = 0.2;  // lost track re-found without overlap below this
  double reid_max_displacement = 1.5;      // ... if the detection moved less (box diagonals)
  double embedding_momentum = 0.9;         // EMA weight of the old embedding (0..1)
  bool class_gating = true;                // never match across class_id
  double duplicate_iou = 0.85;             // tracked/lost pairs overlapping more are merged
  // Lifetimes
  int32_t confirm_hits = 2;                // consecutive matches that confirm a new track
  double lost_timeout_s = 1.0;             // lost track removal, inside the basket (s)
  double outside_lost_timeout_s = 0.5;     // ... outside the basket (s)
  double rest_lost_timeout_s = 120.0;      // ... at rest inside the basket (s)
  double rest_max_displacement = 0.1;      // at rest: observed centre stays this close to
  double rest_min_duration_s = 0.5;        // where it settled (box diagonals) this long (s)
  double frame_period_s = 1.0 / 30.0;      // nominal frame period; the time step without t_ns
  // Kalman filter (fractions of the box size)
  double kalman_position_std = 1.0 / 20.0;
  double kalman_velocity_std = 1.0 / 160.0;
  double kalman_measurement_std = 1.0 / 20.0;
  // Basket zone
  std::vector<double> basket_polygon;      // x0, y0, x1, y1, ... pixels; empty: whole image
  double basket_depth_min_m = 0.0;
  double basket_depth_max_m = 1e9;
  double zone_enter_dwell_s = 0.3;
  double zone_leave_dwell_s = 0.3;
  int32_t zone_min_frames = 3;
  std::vector<int32_t> zone_class_ids{0};  // classes with basket zones; empty: every class
  // SKU posterior
  double sku_temperature = 0.05;           // softmax temperature of the similarities
  double sku_half_life_s = 30.0;           // evidence older than this counts half
  double sku_evidence_span = 80.0;         // deficits beyond it are log-compressed (nats); 0 = unbounded
  int32_t sku_top_k = 3;
};

enum class TrackState : uint8_t { Tentative = 0, Tracked = 1, Lost = 2, Removed = 3 };

// One frame of detections. Pointers are borrowed for the duration of update().
struct FrameInput {
  std::size_t n = 0;
  const float* xyxy = nullptr;            // (n, 4) x1, y1, x2, y2 pixels
  const float* score = nullptr;           // (n,)
  const int32_t* class_id = nullptr;      // (n,)
  const float* embedding = nullptr;       // (n, embedding_dim) or null
  std::size_t embedding_dim = 0;
  const float* depth_m = nullptr;         // (n,) metres, NaN = unknown, or null
  const float* sku_similarity = nullptr;  // (n, n_sku) or null
  std::size_t n_sku = 0;
  bool has_t = false;
  int64_t t_ns = 0;
};

struct Track {
  int64_t id = -1;  // public ID, assigned at confirmation
  int64_t serial = 0;  // creation order (internal)
  TrackState state = TrackState::Tentative;
  int32_t class_id = 0;
  float score = 0.f;
  BoxState kf;
  std::array<double, 4> last_box{};  // last matched detection, xyxy
  int32_t hits = 0;                  // consecutive matches (tentative confirmation)
  int64_t t_first_ns = 0, t_last_ns = 0;
  int32_t det_index = -1;            // detection matched in the current frame
  bool matched = false;
  bool observed_inside = false;      // the current frame's detection is in the basket
  // Appearance
  std::vector<float> embedding;      // unit-norm EMA; empty until a detection brings one
  // Rest: where the observed centre settled (mean of the observations since), and since when
  bool settled = false;
  double settle_x = 0.0, settle_y = 0.0;
  int32_t settle_count = 0;
  int32_t settle_strikes = 0;  // consecutive observations outside the rest radius
  int64_t settle_since_ns = 0;
  bool at_rest = false;
  // Zone
  ZoneState zone;
  // SKU posterior: decayed log evidence per SKU, and its top-k summary
  std::vector<float> sku_log_evidence;
  int64_t sku_t_ns = 0;
  std::vector<int32_t> sku_top_ids;
  std::vector<float> sku_top_prob;
};

// Parallel columns describing a set of tracks (what the binding turns into numpy arrays).
struct TrackTable {
  std::vector<int64_t> track_id;
  std::vector<float> xyxy;  // 4 per track
  std::vector<float> score;
  std::vector<int32_t> class_id;
  std::vector<uint8_t> state;
  std::vector<uint8_t> zone;
  std::vector<uint8_t> at_rest;
  std::vector<int32_t> det_index;
  std::vector<int32_t> sku_ids;   // sku_top_k per track, -1 padded
  std::vector<float> sku_prob;    // sku_top_k per track, 0 padded
  std::vector<int64_t> t_first_ns, t_last_ns;
  void clear();
  void resize(std::size_t rows, std::size_t top_k);
  std::size_t size() const { return track_id.size(); }
};

class Tracker {
 public:
  explicit Tracker(TrackerParams params);  // throws std::invalid_argument on bad params

  // Process one frame. Throws std::invalid_argument (naming the input, index and value) on
  // malformed input; the tracker state is unchanged then.
  void update(const FrameInput& in);

  // Confirmed tracks matched in the last frame (ByteTrack's output).
  const TrackTable& frame_tracks() const { return out_; }
  // Zone transitions decided in the last frame.
  const std::vector<ZoneTransition>& transitions() const { return transitions_; }
  // Every live confirmed track (tracked and lost), plus tentative ones if asked.
  void all_tracks(TrackTable& out, bool include_tentative) const;

  void reset();
  const TrackerParams& params() const { return p_; }
  int64_t frame_count() const { return frame_count_; }
  int64_t last_t_ns() const { return t_ns_; }
  std::size_t embedding_dim() const { return embedding_dim_; }
  std::size_t n_sku() const { return n_sku_; }

 private:
  enum class Stage { First, LowScore, Unconfirmed };

  void validate(const FrameInput& in) const;
  int64_t resolve_time(const FrameInput& in) const;
  void predict(double dt_steps);
  void split_detections(const FrameInput& in);
  void associate(Stage stage, std::vector<int32_t>& track_pool, std::vector<int32_t>& dets,
                 const FrameInput& in);
  void fill_cost_row(Stage stage, const Track& t, const std::vector<int32_t>& dets, const FrameInput& in,
                     double* out);
  void apply_match(Track& t, int32_t det, bool reliable, const FrameInput& in);
  void start_tracks(const std::vector<int32_t>& dets, const FrameInput& in);
  void mark_lost_and_expire();
  void suppress_duplicates();
  void update_rest_and_zones();
  void update_sku_summary(Track& t) const;
  void emit_output();
  void write_row(TrackTable& table, std::size_t r, const Track& t) const;
  template <typename Keep>
  void fill_table(TrackTable& table, Keep keep) const;
  double timeout_s(const Track& t) const;
  bool has_zone(int32_t class_id) const;

  TrackerParams p_;
  KalmanBoxFilter kf_;
  BasketZone zone_;
  std::vector<Track> tracks_;
  int64_t next_id_ = 1;
  int64_t next_serial_ = 0;
  int64_t frame_count_ = 0;
  int64_t t_ns_ = 0;
  std::size_t embedding_dim_ = 0;
  std::size_t n_sku_ = 0;
  // Per-frame scratch (kept to avoid allocations)
  std::vector<int32_t> high_, low_, pool_, unconfirmed_;
  std::vector<float> det_unit_emb_;
  std::vector<uint8_t> det_has_emb_;
  std::vector<double> cost_;
  std::vector<int32_t> row_to_col_;
  std::vector<int32_t> left_tracks_, left_dets_;
  std::vector<uint8_t> det_has_match_;
  // Boxes of the current stage's detections as structure of arrays (vectorised IoU rows).
  std::vector<double> sx1_, sy1_, sx2_, sy2_, sarea_, iou_row_, iou_last_;
  AssignmentWorkspace ws_;
  TrackTable out_;
  std::vector<ZoneTransition> transitions_;
};

}  // namespace caper::track
