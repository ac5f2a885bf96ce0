// Decode step 1 on the GPU: best class per candidate, score threshold, compaction of the
// survivors into a candidate buffer, and a copy of only those to the host, where NMS finishes
// (caper::detect::nms_candidates). The CPU twin is cpp/src/detect/threshold_compact.cpp; both
// call the per-candidate functions of caper/detect_math.hpp, so they agree bit for bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "caper/detect.hpp"
#include "cuda_check.cuh"

namespace caper::detect {
namespace {

constexpr int kThreads = 256;  // a multiple of the warp size (the compaction works per warp)
// Survivors copied back in the same transfer as the counter. A 640x640 YOLO head rarely has more
// than a few hundred candidates above a useful threshold; more costs a second copy, not an error.
constexpr unsigned kSpeculativeCandidates = 2048;

// Thread per candidate: thread i walks rows 4..rows-1 of column i. Neighbouring threads read
// neighbouring addresses of the same row, so every class row is read fully coalesced.
template <typename T>
__global__ void threshold_compact_kernel(const T* __restrict__ raw, int64_t rows, int64_t n, float conf_threshold,
                                         unsigned* __restrict__ count, Candidate* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  bool keep = false;
  Candidate candidate{};
  if (i < n) {
    float best = -INFINITY;
    int32_t best_class = 0;
    const T* score = raw + 4 * n + i;
    for (int64_t c = 0; c < rows - 4; ++c, score += n) {
      running_max_step(load_score(*score), static_cast<int32_t>(c), best, best_class);
    }
    if (passes_threshold(best, conf_threshold)) {
      const float cx = load_score(raw[i]), cy = load_score(raw[n + i]);
      const float w = load_score(raw[2 * n + i]), h = load_score(raw[3 * n + i]);
      keep = box_is_finite(cx, cy, w, h);
      if (keep) candidate = make_candidate(cx, cy, w, h, best, best_class, static_cast<int32_t>(i));
    }
  }
  // Warp-aggregated compaction: one atomicAdd per warp that has survivors, then each survivor
  // writes at the warp's base plus its rank among the warp's survivors. The order of the output
  // is therefore not the column order; the host restores it.
  const unsigned ballot = __ballot_sync(0xffffffffu, keep);
  if (ballot == 0) return;
  const unsigned lane = threadIdx.x & 31u;
  const int leader = __ffs(static_cast<int>(ballot)) - 1;
  unsigned base = 0;
  if (lane == static_cast<unsigned>(leader)) base = atomicAdd(count, static_cast<unsigned>(__popc(ballot)));
  base = __shfl_sync(0xffffffffu, base, leader);
  if (keep) out[base + static_cast<unsigned>(__popc(ballot & ((1u << lane) - 1u)))] = candidate;
}

// Device scratch: a header holding the survivor count, then room for n candidates. Allocated
// stream-ordered (cudaMallocAsync) where the device has memory pools, so steady-state calls reuse
// the pool instead of hitting cudaMalloc's device-wide synchronisation.
struct Scratch {
  static constexpr std::size_t kHeader = 64;  // keeps the candidates 16-byte aligned
  Scratch(std::size_t bytes, cudaStream_t stream, bool pooled) : stream_(stream), pooled_(pooled) {
    if (pooled_) {
      CAPER_CUDA_CHECK(cudaMallocAsync(&base_, bytes, stream_));
    } else {
      CAPER_CUDA_CHECK(cudaMalloc(&base_, bytes));
    }
  }
  ~Scratch() {  // best effort: never throw from a destructor, also while an exception unwinds
    if (pooled_) {
      cudaFreeAsync(base_, stream_);
    } else {
      cudaFree(base_);
    }
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  unsigned* count() const { return static_cast<unsigned*>(base_); }
  Candidate* candidates() const { return reinterpret_cast<Candidate*>(static_cast<char*>(base_) + kHeader); }

 private:
  void* base_ = nullptr;
  cudaStream_t stream_;
  bool pooled_;
};

bool has_memory_pools(int device) {
  int supported = 0;
  CAPER_CUDA_CHECK(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device));
  return supported != 0;
}

// `stream` waits for everything queued so far on `producer` (the stream that wrote the array).
void wait_for_producer(cudaStream_t stream, cudaStream_t producer) {
  cudaEvent_t written;
  CAPER_CUDA_CHECK(cudaEventCreateWithFlags(&written, cudaEventDisableTiming));
  const cudaError_t recorded = cudaEventRecord(written, producer);
  const cudaError_t waited = recorded == cudaSuccess ? cudaStreamWaitEvent(stream, written, 0) : recorded;
  cudaEventDestroy(written);  // released once the wait completes; safe to destroy now
  CAPER_CUDA_CHECK(waited);
}

}  // namespace

void threshold_compact_cuda(const void* raw_device, bool is_half, int64_t rows, int64_t n, float conf_threshold,
                            std::uintptr_t stream_handle, std::uintptr_t producer_handle,
                            std::vector<Candidate>* out) {
  if (n <= 0) return;
  const int device = cuda::device_of(raw_device, "raw");
  cuda::DeviceGuard guard(device);
  const auto stream = reinterpret_cast<cudaStream_t>(stream_handle);
  if (producer_handle != 0 && producer_handle != stream_handle) {
    wait_for_producer(stream, reinterpret_cast<cudaStream_t>(producer_handle));
  }

  // 1. Count := 0, then one thread per candidate.
  Scratch scratch(Scratch::kHeader + static_cast<std::size_t>(n) * sizeof(Candidate), stream, has_memory_pools(device));
  CAPER_CUDA_CHECK(cudaMemsetAsync(scratch.count(), 0, sizeof(unsigned), stream));
  const auto blocks = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  if (is_half) {
    threshold_compact_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const uint16_t*>(raw_device), rows, n,
                                                              conf_threshold, scratch.count(), scratch.candidates());
  } else {
    threshold_compact_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const float*>(raw_device), rows, n,
                                                              conf_threshold, scratch.count(), scratch.candidates());
  }
  CAPER_CUDA_CHECK_LAUNCH();

  // 2. One copy of the header and the first survivors (usually all of them), one sync.
  const std::size_t speculative = std::min<std::size_t>(kSpeculativeCandidates, static_cast<std::size_t>(n));
  std::vector<unsigned char> staging(Scratch::kHeader + speculative * sizeof(Candidate));
  CAPER_CUDA_CHECK(cudaMemcpyAsync(staging.data(), scratch.count(), staging.size(), cudaMemcpyDeviceToHost, stream));
  CAPER_CUDA_CHECK(cudaStreamSynchronize(stream));
  unsigned survivors = 0;
  std::memcpy(&survivors, staging.data(), sizeof survivors);

  // 3. Append them; a second copy only for the survivors beyond the speculative window.
  const std::size_t first = out->size();
  out->resize(first + survivors);
  const std::size_t in_staging = std::min<std::size_t>(survivors, speculative);
  if (in_staging > 0) {
    std::memcpy(out->data() + first, staging.data() + Scratch::kHeader, in_staging * sizeof(Candidate));
  }
  if (survivors > in_staging) {
    CAPER_CUDA_CHECK(cudaMemcpyAsync(out->data() + first + in_staging, scratch.candidates() + in_staging,
                                     (survivors - in_staging) * sizeof(Candidate), cudaMemcpyDeviceToHost, stream));
    CAPER_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  // Column order, as the CPU compaction produces (the NMS order itself does not depend on it).
  std::sort(out->begin() + static_cast<std::ptrdiff_t>(first), out->end(),
            [](const Candidate& a, const Candidate& b) { return a.index < b.index; });
}

}  // namespace caper::detect
