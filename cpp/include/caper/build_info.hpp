// Compile-time facts about the native core.
#pragma once

#include <string>

namespace caper {

struct BuildInfo {
  std::string compiler;
  int cxx_standard = 0;
  bool optimized = false;
  bool cuda_compiled = false;
  std::string cuda_architectures;
  bool nvjpeg_compiled = false;
  std::string simd;  // widest x86/ARM vector extension enabled at compile time
};

BuildInfo build_info();

}  // namespace caper
