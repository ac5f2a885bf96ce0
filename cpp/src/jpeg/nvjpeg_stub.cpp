// Builds without nvJPEG (no CUDA, or a toolkit without nvjpeg.h / libnvjpeg): the GPU JPEG entry
// points exist and say why they cannot run.
#if !defined(CAPER_HAVE_NVJPEG)
#include <stdexcept>

#include "caper/jpeg.hpp"

namespace caper::jpeg {
namespace {

[[noreturn]] void unavailable() {
  throw std::runtime_error(
      "caper_edge._core was built without nvJPEG (no CUDA toolkit, or none with nvjpeg.h and libnvjpeg; "
      "installing the nvidia-nvjpeg wheel before building provides them): use caper_edge.jpeg.decode_jpeg");
}

}  // namespace

bool nvjpeg_compiled() { return false; }
ImageInfo nvjpeg_image_info(const uint8_t*, std::size_t) { unavailable(); }
void nvjpeg_decode_rgb(const uint8_t*, std::size_t, uint8_t*, std::size_t, std::uintptr_t) { unavailable(); }

}  // namespace caper::jpeg
#endif
