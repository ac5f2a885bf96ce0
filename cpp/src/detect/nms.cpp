// Greedy non-maximum suppression with the semantics of cv2.dnn.NMSBoxes (checked against
// OpenCV 5.0 in tests/test_detect.py; the rules are listed in docs/detect.md):
//   * order: score descending, ties by position (OpenCV stable-sorts by score);
//   * IoU of (x, y, w, h) rects in double precision, no "+1" pixel convention; an empty rect
//     (w <= 0 or h <= 0) intersects nothing, and two boxes whose areas sum to ~0 count as
//     identical (IoU 1);
//   * the IoU goes through float as 1 - float(1 - IoU), and a box survives while that is <= the
//     threshold for every box kept before it.
// Class-aware NMS keeps one list of kept boxes per class, so a candidate is only compared with
// its own class; candidates are visited in one global score order, which lets the loop stop as
// soon as max_detections boxes are kept (a candidate's fate depends only on higher-ranked boxes
// of its class, so the first K kept overall are exactly what per-class NMS + merge + cap gives).
#include <algorithm>
#include <limits>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "caper/detect.hpp"

namespace caper::detect {
namespace {

// A box as cv2.dnn.NMSBoxes sees it: cv::Rect2d(x, y, w, h), with its area precomputed.
struct RectD {
  double x, y, w, h, area;
};

RectD make_rect(float x, float y, float w, float h) {
  RectD r{x, y, w, h, 0.0};
  r.area = r.w * r.h;
  return r;
}

// Overlap length of [a0, a0 + aw) and [b0, b0 + bw), measured from the interval that starts first:
// the operation order of OpenCV's Rect_ intersection, so the doubles round identically.
inline double overlap_1d(double a0, double aw, double b0, double bw) {
  const bool a_first = a0 < b0;
  const double first_start = a_first ? a0 : b0, first_len = a_first ? aw : bw;
  const double second_start = a_first ? b0 : a0, second_len = a_first ? bw : aw;
  return std::min(first_len - (second_start - first_start), second_len);
}

inline double intersection_area(const RectD& a, const RectD& b) {
  if (a.w <= 0 || a.h <= 0 || b.w <= 0 || b.h <= 0) return 0.0;  // an empty rect intersects nothing
  const double iw = overlap_1d(a.x, a.w, b.x, b.w);
  const double ih = overlap_1d(a.y, a.h, b.y, b.h);
  return (iw <= 0 || ih <= 0) ? 0.0 : iw * ih;
}

// True when `candidate` must go because it overlaps the already kept box too much.
inline bool suppresses(const RectD& kept, const RectD& candidate, float iou_threshold) {
  const double area_sum = kept.area + candidate.area;
  float overlap = 1.0f;  // areas summing to ~0 (two empty boxes): treated as identical
  if (area_sum > std::numeric_limits<double>::epsilon()) {
    const double inter = intersection_area(kept, candidate);
    const double iou = inter / (area_sum - inter);
    overlap = 1.0f - static_cast<float>(1.0 - iou);  // OpenCV's Jaccard distance, rounded to float
  }
  return !(overlap <= iou_threshold);
}

// Sort key: score descending (as an order-preserving integer), then `tiebreak` ascending.
inline uint64_t order_key(float score, uint32_t tiebreak) {
  const uint32_t bits = float_bits(score + 0.0f);  // + 0.0f: -0 sorts with +0, as OpenCV's compare
  const uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (static_cast<uint64_t>(~ascending) << 32) | tiebreak;
}

// Kept boxes, chained per class (or one chain for class-agnostic NMS).
class GreedySelector {
 public:
  GreedySelector(float iou_threshold, bool per_class, int32_t class_min, int32_t class_max, std::size_t reserve)
      : iou_threshold_(iou_threshold), per_class_(per_class), class_min_(class_min) {
    kept_.reserve(reserve);
    previous_.reserve(reserve);
    // A dense head table when the id range is reasonable (always, for decoded class ids).
    const int64_t range = static_cast<int64_t>(class_max) - class_min + 1;
    dense_ = per_class && range <= (int64_t{1} << 20);
    if (dense_) heads_.assign(static_cast<std::size_t>(range), -1);
  }

  // Keeps `box` unless a kept box of the same chain suppresses it; returns whether it was kept.
  bool offer(const RectD& box, int32_t class_id) {
    int32_t& head = chain_head(class_id);
    for (int32_t k = head; k >= 0; k = previous_[static_cast<std::size_t>(k)]) {
      if (suppresses(kept_[static_cast<std::size_t>(k)], box, iou_threshold_)) return false;
    }
    previous_.push_back(head);
    head = static_cast<int32_t>(kept_.size());
    kept_.push_back(box);
    return true;
  }

  std::size_t kept() const { return kept_.size(); }

 private:
  int32_t& chain_head(int32_t class_id) {
    if (!per_class_) return single_head_;
    if (dense_) return heads_[static_cast<std::size_t>(static_cast<int64_t>(class_id) - class_min_)];
    return sparse_heads_.try_emplace(class_id, -1).first->second;
  }

  float iou_threshold_;
  bool per_class_;
  int32_t class_min_;
  bool dense_ = false;
  int32_t single_head_ = -1;
  std::vector<int32_t> heads_;
  std::unordered_map<int32_t, int32_t> sparse_heads_;
  std::vector<RectD> kept_;
  std::vector<int32_t> previous_;  // previous kept box of the same chain, -1 at the end
};

using KeyedIndex = std::pair<uint64_t, uint32_t>;  // (order key, position)

void sort_by_key(std::vector<KeyedIndex>* order) {
  std::sort(order->begin(), order->end(),
            [](const KeyedIndex& a, const KeyedIndex& b) { return a.first < b.first; });
}

}  // namespace

void nms_candidates(std::vector<Candidate>* candidates, const DecodeParams& params, DetectionList* out) {
  out->clear();
  const std::vector<Candidate>& cands = *candidates;
  if (cands.empty() || params.max_detections <= 0) return;

  // 1. One sort by (score desc, raw column asc): the order OpenCV's stable sort gives.
  std::vector<KeyedIndex> order(cands.size());
  int32_t class_min = std::numeric_limits<int32_t>::max(), class_max = std::numeric_limits<int32_t>::min();
  for (std::size_t i = 0; i < cands.size(); ++i) {
    order[i] = {order_key(cands[i].score, static_cast<uint32_t>(cands[i].index)), static_cast<uint32_t>(i)};
    class_min = std::min(class_min, cands[i].class_id);
    class_max = std::max(class_max, cands[i].class_id);
  }
  sort_by_key(&order);

  // 2. Greedy selection in that order, per class unless class-agnostic, until the cap.
  const auto cap = static_cast<std::size_t>(std::min<int64_t>(params.max_detections, static_cast<int64_t>(cands.size())));
  GreedySelector selector(params.iou_threshold, !params.class_agnostic, class_min, class_max, cap);
  out->xyxy.reserve(4 * cap);
  out->score.reserve(cap);
  out->class_id.reserve(cap);
  for (const KeyedIndex& entry : order) {
    const Candidate& c = cands[entry.second];
    if (!selector.offer(make_rect(c.x1, c.y1, c.w, c.h), c.class_id)) continue;
    out->xyxy.insert(out->xyxy.end(), {c.x1, c.y1, c.x2, c.y2});
    out->score.push_back(c.score);
    out->class_id.push_back(c.class_id);
    if (selector.kept() == cap) break;
  }
}

std::vector<int64_t> nms(const float* xyxy, const float* score, const int32_t* class_id, int64_t n,
                         float iou_threshold, int64_t max_detections) {
  if (n > std::numeric_limits<int32_t>::max()) throw std::length_error("nms: more than 2^31 - 1 boxes");
  std::vector<int64_t> kept_rows;
  if (n <= 0 || max_detections <= 0) return kept_rows;

  // 1. Drop what can never be kept (NaN score, non-finite box), then sort the rest once.
  std::vector<KeyedIndex> order;
  order.reserve(static_cast<std::size_t>(n));
  int32_t class_min = 0, class_max = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* b = xyxy + 4 * i;
    if (score[i] != score[i] || !is_finite(b[0]) || !is_finite(b[1]) || !is_finite(b[2]) || !is_finite(b[3])) continue;
    if (class_id) {
      class_min = order.empty() ? class_id[i] : std::min(class_min, class_id[i]);
      class_max = order.empty() ? class_id[i] : std::max(class_max, class_id[i]);
    }
    order.emplace_back(order_key(score[i], static_cast<uint32_t>(i)), static_cast<uint32_t>(i));
  }
  sort_by_key(&order);

  // 2. Greedy selection; a box's width and height are x2 - x1 and y2 - y1 in float32.
  const auto cap = static_cast<std::size_t>(std::min<int64_t>(max_detections, static_cast<int64_t>(order.size())));
  if (cap == 0) return kept_rows;
  GreedySelector selector(iou_threshold, class_id != nullptr, class_min, class_max, cap);
  kept_rows.reserve(cap);
  for (const KeyedIndex& entry : order) {
    const float* b = xyxy + 4 * static_cast<int64_t>(entry.second);
    const RectD rect = make_rect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
    if (!selector.offer(rect, class_id ? class_id[entry.second] : 0)) continue;
    kept_rows.push_back(entry.second);
    if (selector.kept() == cap) break;
  }
  return kept_rows;
}

}  // namespace caper::detect
