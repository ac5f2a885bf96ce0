"""Type stubs and docstrings for caper_edge._core, the compiled half of caper_edge.

One section per area, in the order of cpp/bindings/module.cpp. Prefer the validated Python
wrappers (caper_edge.preprocess, caper_edge.detect, ...) over calling these directly.
"""

from typing import Any

__version__: str

# --- build info -----------------------------------------------------------------------------

def build_info() -> dict[str, Any]:
    """Facts about how this module was compiled: compiler, cxx_standard, optimized,
    cuda_compiled, cuda_architectures, nvjpeg_compiled, simd."""

def cuda_device_count() -> tuple[int, str]:
    """(count, reason): usable CUDA devices; reason is '' when count > 0. Never raises."""

def cuda_device_name(index: int = 0) -> str:
    """Name and compute capability of CUDA device ``index``, or '' when unavailable."""
