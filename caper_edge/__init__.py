"""caper_edge: on-device real-time perception runtime of an AI shopping cart.

The compiled half lives in :mod:`caper_edge._core`; the Python modules re-export it with
validated, documented entry points (``preprocess``, ``detect``, ``track``, ``scale`` ...).
"""

from __future__ import annotations

from . import _core
from ._core import build_info, cuda_device_count, cuda_device_name

__version__: str = _core.__version__

__all__ = ["__version__", "build_info", "cuda_device_count", "cuda_device_name"]
