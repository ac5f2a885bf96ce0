// CUDA entry points of the letterbox (kernels/letterbox.cu). Declared without CUDA types so
// that the bindings compile with a plain C++ compiler; only defined when CAPER_HAVE_CUDA.
// Streams travel as integers: a cudaStream_t value, where 0 is the legacy default stream and
// 1 / 2 are cudaStreamLegacy / cudaStreamPerThread (the __cuda_array_interface__ convention).
#pragma once

#include <cstdint>
#include <string>

#include "caper/preprocess.hpp"

namespace caper::preprocess::cuda {

// Device that owns `ptr`; throws std::invalid_argument naming `what` when ptr is not device or
// managed memory (e.g. a host numpy buffer), std::runtime_error on a CUDA failure.
int pointer_device(const void* ptr, const char* what);

// Make `consumer` wait for the work queued so far on `producer` (an event, no host sync).
// No-op when they are the same stream.
void stream_wait(std::uintptr_t producer, std::uintptr_t consumer, int device);

// Enqueue the letterbox of a device image on `stream` and return without synchronising.
// src: device pointer to the packed image (row_stride bytes per row); out: device pointer to
// C-contiguous (3, g.dst_h, g.dst_w) planes of `type`. One thread per output pixel running
// letterbox_pixel(), the same function the CPU reference runs. Throws std::runtime_error
// (with CUDA's error text) when the launch fails.
void letterbox(const uint8_t* src, long long row_stride, PixelFormat format, const Geometry& g, const Affine& norm,
               uint8_t pad_value, OutType type, void* out, std::uintptr_t stream, int device);

}  // namespace caper::preprocess::cuda
