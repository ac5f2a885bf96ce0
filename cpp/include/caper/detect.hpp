// Detection decode for the Ultralytics YOLOv8 / YOLO11 export layout and greedy NMS.
//
// Raw layout: a row-major (rows, n) matrix, rows = 4 + nc: rows 0..3 are cx, cy, w, h (pixels of
// the network input) and rows 4..4+nc-1 the class scores of each of the n candidates (columns).
// Decode = per-candidate best class (a running max walking each class row contiguously),
// threshold, compaction, then greedy NMS per class or across classes. The NMS keeps exactly the
// set cv2.dnn.NMSBoxes keeps (see docs/detect.md for the semantics and how they were checked).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "caper/detect_math.hpp"

namespace caper::detect {

struct DecodeParams {
  float conf_threshold = 0.25f;  // keep candidates whose best score is > this
  float iou_threshold = 0.45f;   // suppress a box whose IoU with a kept box is > this
  int64_t max_detections = 300;  // cap on the number of boxes returned
  bool class_agnostic = false;   // false: NMS within each class; true: across all classes
};

// Parallel arrays, sorted by descending score (ties: lower raw column first).
struct DetectionList {
  std::vector<float> xyxy;        // 4 per detection: x1, y1, x2, y2
  std::vector<float> score;       // best class score
  std::vector<int32_t> class_id;  // class of that score
  std::size_t size() const { return score.size(); }
  void clear() {
    xyxy.clear();
    score.clear();
    class_id.clear();
  }
};

// Step 1: best class per candidate, score threshold, non-finite boxes dropped; survivors are
// appended to `out` in column order. `raw` is (rows, n) row-major, rows >= 5; the uint16_t
// overload reads IEEE binary16 bits.
void threshold_compact(const float* raw, int64_t rows, int64_t n, float conf_threshold, std::vector<Candidate>* out);
void threshold_compact(const uint16_t* raw, int64_t rows, int64_t n, float conf_threshold,
                       std::vector<Candidate>* out);

// Step 2: sort by (score desc, column asc), greedy NMS (class-aware unless params.class_agnostic),
// stop at params.max_detections. Replaces the contents of `out`. `candidates` is reordered.
void nms_candidates(std::vector<Candidate>* candidates, const DecodeParams& params, DetectionList* out);

// Steps 1 + 2.
void decode(const float* raw, int64_t rows, int64_t n, const DecodeParams& params, DetectionList* out);
void decode(const uint16_t* raw, int64_t rows, int64_t n, const DecodeParams& params, DetectionList* out);

// Plain greedy NMS on n given boxes (x1, y1, x2, y2 per row) with the same rules; no score
// threshold. `class_id` may be null (all boxes compete). Boxes with a NaN score or a non-finite
// coordinate are never kept. Returns the kept row indices by descending score (ties: lower row first),
// at most max_detections of them.
std::vector<int64_t> nms(const float* xyxy, const float* score, const int32_t* class_id, int64_t n,
                         float iou_threshold, int64_t max_detections);

// The CUDA twin of threshold_compact: `raw_device` points to (rows, n) float32 (or binary16 when
// `is_half`) in device memory. The kernel runs on `stream` (a cudaStream_t as an integer; 0 is the
// legacy default stream) after the work already queued there; when `producer_stream` differs
// from `stream` and is non-zero, `stream` first waits for it through an event. Work runs on the
// device that owns `raw_device`. Blocks the calling thread until the survivors are on the host;
// appends them to `out` in column order (the kernel compacts in any order, the host sorts by
// column). Throws std::runtime_error when the module has no CUDA, the pointer is not device
// memory, or a CUDA call fails.
void threshold_compact_cuda(const void* raw_device, bool is_half, int64_t rows, int64_t n, float conf_threshold,
                            std::uintptr_t stream, std::uintptr_t producer_stream, std::vector<Candidate>* out);

}  // namespace caper::detect
