// CAPER_HD marks a function that both the C++ core and the CUDA kernels compile, so the per-pixel
// and per-candidate math exists once and CPU tests cover it where no GPU exists. Under nvcc it
// is `__host__ __device__`; under a plain C++ compiler it is empty. Write shared functions as
// `CAPER_HD inline T f(...)` in headers that include nothing CUDA-specific.
#pragma once

#if defined(__CUDACC__)
#define CAPER_HD __host__ __device__
#else
#define CAPER_HD
#endif
