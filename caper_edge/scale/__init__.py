"""Weight sensing: the scale MCU's serial protocol, its reader, calibration and weight events.

- :class:`ScaleDecoder` turns the byte stream into :class:`ScaleSample` s (docs/scale_protocol.md);
  :func:`encode_sample` / :func:`encode_status` write the protocol (simulators, tests).
- :class:`ScaleReader` is the link thread (reconnects, maps the MCU clock with
  :class:`ClockMapper`, calibrates) delivering :class:`CalibratedSample` s.
- :class:`WeightEventDetector` (C++) turns calibrated samples into :class:`WeightEvent` s
  (docs/weight_events.md).
- :mod:`caper_edge.scale.loadcell` simulates the basket's load cells; :mod:`.scenarios` names
  seeded traces built on it.
"""

from __future__ import annotations

from .clock import ClockMapper
from .decoder import DecoderStats, ScaleDecoder, ScaleSample, ScaleStatus
from .events import WeightEvent, WeightEventDetector, default_event_params
from .protocol import FLAG_ADC_FAULT, FLAG_MOTION, FLAG_OVERLOAD, checksum, encode_sample, encode_status
from .reader import CalibratedSample, ScaleReader

__all__ = [
    "FLAG_ADC_FAULT",
    "FLAG_MOTION",
    "FLAG_OVERLOAD",
    "CalibratedSample",
    "ClockMapper",
    "DecoderStats",
    "ScaleDecoder",
    "ScaleReader",
    "ScaleSample",
    "ScaleStatus",
    "WeightEvent",
    "WeightEventDetector",
    "checksum",
    "default_event_params",
    "encode_sample",
    "encode_status",
]
