// The letterbox on the GPU: one thread per output pixel, each running letterbox_pixel() from
// preprocess_math.hpp (the same function the CPU reference runs), so CPU tests cover this math
// and the GPU test only has to check the launch plumbing. Memory-bound: each thread reads at
// most four source pixels (L1/L2 shared with its neighbours) and writes three plane values.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "caper/preprocess_cuda.hpp"
#include "caper/preprocess_math.hpp"
#include "cuda_check.cuh"

namespace caper::preprocess::cuda {

namespace {

template <PixelFormat F, typename Out>
__global__ void letterbox_kernel(const uint8_t* __restrict__ src, long long row_stride, Geometry g, Affine n,
                                 float pad, Out* __restrict__ out) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= g.dst_w || y >= g.dst_h) return;
  float v[3];
  letterbox_pixel<F>(src, row_stride, g, n, pad, x, y, v);
  const size_t plane = static_cast<size_t>(g.dst_h) * g.dst_w;
  const size_t i = static_cast<size_t>(y) * g.dst_w + x;
  for (int c = 0; c < 3; ++c) {
    if constexpr (sizeof(Out) == 4) {
      out[c * plane + i] = v[c];
    } else {
      out[c * plane + i] = float_to_half_bits(v[c]);
    }
  }
}

template <PixelFormat F>
void launch(const uint8_t* src, long long row_stride, const Geometry& g, const Affine& n, float pad, OutType type,
            void* out, cudaStream_t stream) {
  const dim3 block(32, 8);
  const dim3 grid((g.dst_w + block.x - 1) / block.x, (g.dst_h + block.y - 1) / block.y);
  if (type == OutType::kFloat32) {
    letterbox_kernel<F, float><<<grid, block, 0, stream>>>(src, row_stride, g, n, pad, static_cast<float*>(out));
  } else {
    letterbox_kernel<F, uint16_t>
        <<<grid, block, 0, stream>>>(src, row_stride, g, n, pad, static_cast<uint16_t*>(out));
  }
  CAPER_CUDA_CHECK_LAUNCH();
}

// Runs `fn` with `device` current, restoring the caller's device afterwards.
template <typename Fn>
void on_device(int device, Fn&& fn) {
  int previous = 0;
  CAPER_CUDA_CHECK(cudaGetDevice(&previous));
  if (previous != device) CAPER_CUDA_CHECK(cudaSetDevice(device));
  try {
    fn();
  } catch (...) {
    if (previous != device) cudaSetDevice(previous);
    throw;
  }
  if (previous != device) CAPER_CUDA_CHECK(cudaSetDevice(previous));
}

cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

}  // namespace

int pointer_device(const void* ptr, const char* what) {
  cudaPointerAttributes attr{};
  CAPER_CUDA_CHECK(cudaPointerGetAttributes(&attr, ptr));
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) {
    throw std::invalid_argument(std::string(what) +
                                " must be CUDA device or managed memory, got a host pointer "
                                "(pass a CuPy / PyTorch / Numba device array, or use letterbox() for host arrays)");
  }
  return attr.device;
}

void stream_wait(std::uintptr_t producer, std::uintptr_t consumer, int device) {
  if (producer == consumer) return;
  on_device(device, [&] {
    cudaEvent_t ev = nullptr;
    CAPER_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    try {
      CAPER_CUDA_CHECK(cudaEventRecord(ev, as_stream(producer)));
      CAPER_CUDA_CHECK(cudaStreamWaitEvent(as_stream(consumer), ev, 0));
    } catch (...) {
      cudaEventDestroy(ev);
      throw;
    }
    // Safe right away: CUDA releases the event once the queued wait has completed.
    CAPER_CUDA_CHECK(cudaEventDestroy(ev));
  });
}

void letterbox(const uint8_t* src, long long row_stride, PixelFormat format, const Geometry& g, const Affine& norm,
               uint8_t pad_value, OutType type, void* out, std::uintptr_t stream, int device) {
  const float pad = static_cast<float>(pad_value);
  const cudaStream_t s = as_stream(stream);
  on_device(device, [&] {
    switch (format) {
      case PixelFormat::kRGB8:
        return launch<PixelFormat::kRGB8>(src, row_stride, g, norm, pad, type, out, s);
      case PixelFormat::kBGR8:
        return launch<PixelFormat::kBGR8>(src, row_stride, g, norm, pad, type, out, s);
      case PixelFormat::kYUYV:
        return launch<PixelFormat::kYUYV>(src, row_stride, g, norm, pad, type, out, s);
      case PixelFormat::kGray:
        return launch<PixelFormat::kGray>(src, row_stride, g, norm, pad, type, out, s);
    }
    throw std::invalid_argument("unknown pixel format " + std::to_string(static_cast<int>(format)));
  });
}

}  // namespace caper::preprocess::cuda
