// Decode step 1: best class per candidate, score threshold, compaction (the CPU twin of
// kernels/decode_compact.cu; both use the per-candidate math in caper/detect_math.hpp).
#include <algorithm>
#include <limits>

#include "caper/detect.hpp"

namespace caper::detect {
namespace {

// Candidates are processed in blocks whose running max and arg-max (8 bytes per candidate) stay
// in L1 while every class row streams past once, contiguously: a strided walk down each column
// would touch one cache line per score.
constexpr int64_t kBlock = 1024;
// Class rows folded into the running max per sweep over a block: the max and arg-max are loaded
// and stored once per kRowsPerSweep scores instead of once per score (about 1.5x faster for 80
// classes on a Zen 4 core). The rows are still visited in class order, so ties keep the lower id.
constexpr int64_t kRowsPerSweep = 8;

template <typename T>
void running_max_block(const T* raw, int64_t n, int64_t num_classes, int64_t start, int64_t len, float* best,
                       int32_t* best_class) {
  std::fill(best, best + len, -std::numeric_limits<float>::infinity());
  std::fill(best_class, best_class + len, int32_t{0});
  int64_t c = 0;
  for (; c + kRowsPerSweep <= num_classes; c += kRowsPerSweep) {
    const T* rows = raw + (4 + c) * n + start;
    for (int64_t i = 0; i < len; ++i) {
      float b = best[i];
      int32_t k = best_class[i];
      for (int64_t r = 0; r < kRowsPerSweep; ++r) {
        running_max_step(load_score(rows[r * n + i]), static_cast<int32_t>(c + r), b, k);
      }
      best[i] = b;
      best_class[i] = k;
    }
  }
  for (; c < num_classes; ++c) {
    const T* row = raw + (4 + c) * n + start;
    const auto class_id = static_cast<int32_t>(c);
    for (int64_t i = 0; i < len; ++i) running_max_step(load_score(row[i]), class_id, best[i], best_class[i]);
  }
}

template <typename T>
void threshold_compact_impl(const T* raw, int64_t rows, int64_t n, float conf_threshold,
                            std::vector<Candidate>* out) {
  const int64_t num_classes = rows - 4;
  alignas(64) float best[kBlock];
  alignas(64) int32_t best_class[kBlock];
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t len = std::min(kBlock, n - start);

    // 1. Running max over the class rows (NaN scores never win, ties keep the lower class).
    running_max_block(raw, n, num_classes, start, len, best, best_class);

    // 2. Threshold and compact; the box rows are read only for survivors.
    const T* cx = raw + start;
    const T* cy = raw + n + start;
    const T* w = raw + 2 * n + start;
    const T* h = raw + 3 * n + start;
    for (int64_t i = 0; i < len; ++i) {
      if (!passes_threshold(best[i], conf_threshold)) continue;
      const float bx = load_score(cx[i]), by = load_score(cy[i]), bw = load_score(w[i]), bh = load_score(h[i]);
      if (!box_is_finite(bx, by, bw, bh)) continue;
      out->push_back(make_candidate(bx, by, bw, bh, best[i], best_class[i], static_cast<int32_t>(start + i)));
    }
  }
}

}  // namespace

void threshold_compact(const float* raw, int64_t rows, int64_t n, float conf_threshold, std::vector<Candidate>* out) {
  threshold_compact_impl(raw, rows, n, conf_threshold, out);
}

void threshold_compact(const uint16_t* raw, int64_t rows, int64_t n, float conf_threshold,
                       std::vector<Candidate>* out) {
  threshold_compact_impl(raw, rows, n, conf_threshold, out);
}

void decode(const float* raw, int64_t rows, int64_t n, const DecodeParams& params, DetectionList* out) {
  std::vector<Candidate> candidates;
  threshold_compact(raw, rows, n, params.conf_threshold, &candidates);
  nms_candidates(&candidates, params, out);
}

void decode(const uint16_t* raw, int64_t rows, int64_t n, const DecodeParams& params, DetectionList* out) {
  std::vector<Candidate> candidates;
  threshold_compact(raw, rows, n, params.conf_threshold, &candidates);
  nms_candidates(&candidates, params, out);
}

}  // namespace caper::detect
