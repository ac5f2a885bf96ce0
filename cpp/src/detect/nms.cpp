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
// `iou_threshold` is in [0, 1] (checked by the callers), so disjoint boxes (IoU 0) never suppress:
// the common case returns before the division.
inline bool suppresses(const RectD& kept, const RectD& candidate, float iou_threshold) {
  const double area_sum = kept.area + candidate.area;
  if (!(area_sum > std::numeric_limits<double>::epsilon())) {
    return !(1.0f <= iou_threshold);  // areas summing to ~0 (two empty boxes): treated as identical
  }
  const double inter = intersection_area(kept, candidate);
  if (inter == 0.0) return false;
  const double iou = inter / (area_sum - inter);
  const float overlap = 1.0f - static_cast<float>(1.0 - iou);  // OpenCV's Jaccard distance, rounded to float
  return !(overlap <= iou_threshold);
}

// Sort key: score descending (as an order-preserving integer), then `tiebreak` ascending.
inline uint64_t order_key(float score, uint32_t tiebreak) {
  const uint32_t bits = float_bits(score + 0.0f);  // + 0.0f: -0 sorts with +0, as OpenCV's compare
  const uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (static_cast<uint64_t>(~ascending) << 32) | tiebreak;
}

// Kept boxes of each group (a class; one group for class-agnostic NMS), each group in its own
// contiguous region of one buffer sized by the group's number of candidates: a candidate scans
// only its own class's kept boxes, sequentially, and no per-class allocation happens.
class GreedySelector {
 public:
  // groups[i] in [0, num_groups): the group of the i-th box that will be offered.
  GreedySelector(float iou_threshold, const std::vector<int32_t>& groups, int32_t num_groups)
      : iou_threshold_(iou_threshold), end_(static_cast<std::size_t>(num_groups), 0), storage_(groups.size()) {
    for (const int32_t g : groups) ++end_[static_cast<std::size_t>(g)];
    std::size_t offset = 0;
    for (std::size_t& e : end_) {  // counts -> start of each region (nothing kept yet)
      const std::size_t count = e;
      e = offset;
      offset += count;
    }
    begin_ = end_;
  }

  // Keeps `box` unless a kept box of its group suppresses it; returns whether it was kept.
  bool offer(const RectD& box, int32_t group) {
    const auto g = static_cast<std::size_t>(group);
    const RectD* kept = storage_.data();
    for (std::size_t k = begin_[g]; k < end_[g]; ++k) {
      if (suppresses(kept[k], box, iou_threshold_)) return false;
    }
    storage_[end_[g]++] = box;
    ++kept_;
    return true;
  }

  std::size_t kept() const { return kept_; }

 private:
  float iou_threshold_;
  std::vector<std::size_t> end_;    // one past the last kept box of each group
  std::vector<std::size_t> begin_;  // first slot of each group's region
  std::vector<RectD> storage_;
  std::size_t kept_ = 0;
};

// Dense group numbers 0..G-1 for class ids: an offset when the id range is small (always, for
// decoded classes), else the rank among the distinct ids. Returns G.
int32_t dense_groups(const std::vector<int32_t>& class_ids, std::vector<int32_t>* groups) {
  groups->resize(class_ids.size());
  if (class_ids.empty()) return 0;
  const auto [lo, hi] = std::minmax_element(class_ids.begin(), class_ids.end());
  const int64_t range = static_cast<int64_t>(*hi) - *lo + 1;
  if (range <= 4 * static_cast<int64_t>(class_ids.size()) + 1024) {
    for (std::size_t i = 0; i < class_ids.size(); ++i) (*groups)[i] = static_cast<int32_t>(class_ids[i] - int64_t{*lo});
    return static_cast<int32_t>(range);
  }
  std::vector<int32_t> distinct(class_ids);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  for (std::size_t i = 0; i < class_ids.size(); ++i) {
    (*groups)[i] = static_cast<int32_t>(std::lower_bound(distinct.begin(), distinct.end(), class_ids[i]) - distinct.begin());
  }
  return static_cast<int32_t>(distinct.size());
}

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
  for (std::size_t i = 0; i < cands.size(); ++i) {
    order[i] = {order_key(cands[i].score, static_cast<uint32_t>(cands[i].index)), static_cast<uint32_t>(i)};
  }
  sort_by_key(&order);

  // 2. Greedy selection in that order, per class unless class-agnostic, until the cap.
  std::vector<int32_t> class_ids(order.size(), 0), groups;
  if (!params.class_agnostic) {
    for (std::size_t i = 0; i < order.size(); ++i) class_ids[i] = cands[order[i].second].class_id;
  }
  const int32_t num_groups = dense_groups(class_ids, &groups);
  GreedySelector selector(params.iou_threshold, groups, num_groups);
  const auto cap = static_cast<std::size_t>(std::min<int64_t>(params.max_detections, static_cast<int64_t>(cands.size())));
  out->xyxy.reserve(4 * cap);
  out->score.reserve(cap);
  out->class_id.reserve(cap);
  for (std::size_t i = 0; i < order.size(); ++i) {
    const Candidate& c = cands[order[i].second];
    if (!selector.offer(make_rect(c.x1, c.y1, c.w, c.h), groups[i])) continue;
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
  for (int64_t i = 0; i < n; ++i) {
    const float* b = xyxy + 4 * i;
    if (score[i] != score[i] || !is_finite(b[0]) || !is_finite(b[1]) || !is_finite(b[2]) || !is_finite(b[3])) continue;
    order.emplace_back(order_key(score[i], static_cast<uint32_t>(i)), static_cast<uint32_t>(i));
  }
  sort_by_key(&order);

  // 2. Greedy selection; a box's width and height are x2 - x1 and y2 - y1 in float32.
  std::vector<int32_t> class_ids(order.size(), 0), groups;
  if (class_id) {
    for (std::size_t i = 0; i < order.size(); ++i) class_ids[i] = class_id[order[i].second];
  }
  const int32_t num_groups = dense_groups(class_ids, &groups);
  GreedySelector selector(iou_threshold, groups, num_groups);
  const auto cap = static_cast<std::size_t>(std::min<int64_t>(max_detections, static_cast<int64_t>(order.size())));
  kept_rows.reserve(cap);
  for (std::size_t i = 0; i < order.size() && kept_rows.size() < cap; ++i) {
    const float* b = xyxy + 4 * static_cast<int64_t>(order[i].second);
    if (selector.offer(make_rect(b[0], b[1], b[2] - b[0], b[3] - b[1]), groups[i])) kept_rows.push_back(order[i].second);
  }
  return kept_rows;
}

}  // namespace caper::detect
