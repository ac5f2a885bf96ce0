// Runtime GPU discovery, callable from code that never includes CUDA headers.
#pragma once

#include <string>

namespace caper::cuda {

// Number of usable CUDA devices; 0 (with `reason` filled) when the module was built without
// CUDA, when no driver is installed, or when no device is visible. Never throws.
int device_count(std::string* reason);

// "NVIDIA H100 80GB HBM3 (sm_90)" for device `index`; empty when unavailable.
std::string device_name(int index);

}  // namespace caper::cuda
