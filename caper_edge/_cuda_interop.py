"""CUDA stream handles from the objects that CuPy, PyTorch and Numba hand around.

Private helper shared by the GPU entry points (``detect.decode_cuda``, ``jpeg.decode_jpeg_cuda``):
they take a stream as an int ``cudaStream_t`` or as a library's stream object and pass the
native core a plain integer handle.
"""

from __future__ import annotations

import numbers
from typing import Any


def stream_handle(stream: Any) -> int:
    """A ``cudaStream_t`` as an int (0 = legacy default stream) from an int or a stream object.

    Accepted: an int >= 0; anything with ``__cuda_stream__()`` (the CUDA stream protocol, returns
    ``(version, handle)``); a CuPy stream (``.ptr``); a PyTorch stream (``.cuda_stream``); a Numba
    stream (``.handle``, a ``ctypes.c_void_p``).
    """
    if isinstance(stream, numbers.Integral) and not isinstance(stream, bool):
        if stream < 0:
            raise ValueError(f"stream must be a cudaStream_t handle >= 0, got {stream}")
        return int(stream)
    if hasattr(stream, "__cuda_stream__"):
        return int(stream.__cuda_stream__()[1])
    for attr in ("ptr", "cuda_stream", "handle"):
        value = getattr(stream, attr, None)
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if value is not None and hasattr(value, "value"):  # ctypes.c_void_p
            return int(value.value or 0)
    raise ValueError(
        f"stream must be an integer cudaStream_t or a CuPy/PyTorch/Numba stream, got {type(stream).__name__}"
    )
