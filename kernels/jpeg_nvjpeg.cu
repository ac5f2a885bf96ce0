// GPU JPEG decode with nvJPEG: JPEG bytes in host memory -> interleaved RGB uint8 in device
// memory, on the caller's stream, ready for the letterbox kernel (rgb8 input). Compiled only when
// CMake found nvjpeg.h and libnvjpeg (CAPER_HAVE_NVJPEG); cpp/src/jpeg/nvjpeg_stub.cpp otherwise.
#if defined(CAPER_HAVE_NVJPEG)
#include <cuda_runtime.h>
#include <nvjpeg.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "caper/jpeg.hpp"
#include "cuda_check.cuh"

namespace caper::jpeg {
namespace {

const char* status_name(nvjpegStatus_t s) {
  switch (s) {
    case NVJPEG_STATUS_SUCCESS: return "NVJPEG_STATUS_SUCCESS";
    case NVJPEG_STATUS_NOT_INITIALIZED: return "NVJPEG_STATUS_NOT_INITIALIZED";
    case NVJPEG_STATUS_INVALID_PARAMETER: return "NVJPEG_STATUS_INVALID_PARAMETER";
    case NVJPEG_STATUS_BAD_JPEG: return "NVJPEG_STATUS_BAD_JPEG";
    case NVJPEG_STATUS_JPEG_NOT_SUPPORTED: return "NVJPEG_STATUS_JPEG_NOT_SUPPORTED";
    case NVJPEG_STATUS_ALLOCATOR_FAILURE: return "NVJPEG_STATUS_ALLOCATOR_FAILURE";
    case NVJPEG_STATUS_EXECUTION_FAILED: return "NVJPEG_STATUS_EXECUTION_FAILED";
    case NVJPEG_STATUS_ARCH_MISMATCH: return "NVJPEG_STATUS_ARCH_MISMATCH";
    case NVJPEG_STATUS_INTERNAL_ERROR: return "NVJPEG_STATUS_INTERNAL_ERROR";
    case NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED: return "NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED";
    case NVJPEG_STATUS_INCOMPLETE_BITSTREAM: return "NVJPEG_STATUS_INCOMPLETE_BITSTREAM";
    default: return "unknown nvjpegStatus_t";
  }
}

// Problems with the data are the caller's (ValueError in Python); everything else is ours.
void check(nvjpegStatus_t s, const char* call) {
  if (s == NVJPEG_STATUS_SUCCESS) return;
  const std::string msg = std::string(call) + " failed: " + status_name(s) + " (" + std::to_string(static_cast<int>(s)) + ")";
  if (s == NVJPEG_STATUS_BAD_JPEG || s == NVJPEG_STATUS_JPEG_NOT_SUPPORTED || s == NVJPEG_STATUS_INCOMPLETE_BITSTREAM) {
    throw std::invalid_argument("JPEG data rejected by nvJPEG: " + msg);
  }
  throw std::runtime_error(msg);
}

// One library handle per device (thread-safe per the nvJPEG docs) and one decode state per
// thread and device (states are not). Created on first use and kept for the life of the process:
// destroying them from static destructors could run after the CUDA driver has been torn down.
nvjpegHandle_t handle_for(int device) {
  static std::mutex mutex;
  static std::map<int, nvjpegHandle_t>* handles = new std::map<int, nvjpegHandle_t>();
  std::lock_guard<std::mutex> lock(mutex);
  auto it = handles->find(device);
  if (it != handles->end()) return it->second;
  nvjpegHandle_t h = nullptr;
  check(nvjpegCreateSimple(&h), "nvjpegCreateSimple");
  handles->emplace(device, h);
  return h;
}

nvjpegJpegState_t state_for(int device, nvjpegHandle_t handle) {
  thread_local std::map<int, nvjpegJpegState_t> states;
  auto it = states.find(device);
  if (it != states.end()) return it->second;
  nvjpegJpegState_t s = nullptr;
  check(nvjpegJpegStateCreate(handle, &s), "nvjpegJpegStateCreate");
  states.emplace(device, s);
  return s;
}

int current_device() {
  int device = 0;
  CAPER_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

}  // namespace

bool nvjpeg_compiled() { return true; }

ImageInfo nvjpeg_image_info(const uint8_t* data, std::size_t size) {
  int components = 0;
  nvjpegChromaSubsampling_t subsampling{};
  int widths[NVJPEG_MAX_COMPONENT] = {};
  int heights[NVJPEG_MAX_COMPONENT] = {};
  check(nvjpegGetImageInfo(handle_for(current_device()), data, size, &components, &subsampling, widths, heights),
        "nvjpegGetImageInfo");
  ImageInfo info;
  info.width = widths[0];
  info.height = heights[0];
  info.components = components;
  return info;
}

void nvjpeg_decode_rgb(const uint8_t* data, std::size_t size, uint8_t* out_device, std::size_t pitch,
                       std::uintptr_t stream) {
  const int device = cuda::device_of(out_device, "out");
  cuda::DeviceGuard guard(device);
  const nvjpegHandle_t handle = handle_for(device);
  const ImageInfo info = nvjpeg_image_info(data, size);
  if (pitch < static_cast<std::size_t>(info.width) * 3) {
    throw std::invalid_argument("output pitch " + std::to_string(pitch) + " bytes is below 3 * width = " +
                                std::to_string(3 * info.width));
  }
  nvjpegImage_t image{};
  image.channel[0] = out_device;
  image.pitch[0] = pitch;
  check(nvjpegDecode(handle, state_for(device, handle), data, size, NVJPEG_OUTPUT_RGBI, &image,
                     reinterpret_cast<cudaStream_t>(stream)),
        "nvjpegDecode");
  CAPER_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace caper::jpeg
#endif  // CAPER_HAVE_NVJPEG
