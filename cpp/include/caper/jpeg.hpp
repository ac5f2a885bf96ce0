// GPU JPEG decode with nvJPEG (kernels/jpeg_nvjpeg.cu), built only where nvJPEG was found at
// configure time (CAPER_HAVE_NVJPEG); otherwise these entry points throw std::runtime_error
// saying so. The CPU decoder is OpenCV's (caper_edge.jpeg.decode_jpeg), not wrapped here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace caper::jpeg {

struct ImageInfo {
  int width = 0;
  int height = 0;
  int components = 0;  // 1 (grayscale) or 3 (YCbCr); nvJPEG rejects others
};

// Whether this build has nvJPEG (a runtime question needs a GPU too: cuda::device_count).
bool nvjpeg_compiled();

// Size and components from the JPEG headers (nvjpegGetImageInfo; host only, no GPU work).
// std::invalid_argument when nvJPEG cannot parse `data`.
ImageInfo nvjpeg_image_info(const uint8_t* data, std::size_t size);

// Decodes `data` (host memory) into interleaved RGB uint8, (height, width, 3), at `out_device`
// with rows `pitch` bytes apart (>= 3 * width), on `stream` (a cudaStream_t as an integer; 0 is
// the legacy default stream). Entropy decoding runs on the calling thread; the GPU stages are
// queued on `stream`, so the image is ready in that stream's order, not necessarily on return.
// std::invalid_argument for data nvJPEG rejects, std::runtime_error for CUDA/nvJPEG failures.
void nvjpeg_decode_rgb(const uint8_t* data, std::size_t size, uint8_t* out_device, std::size_t pitch,
                       std::uintptr_t stream);

}  // namespace caper::jpeg
