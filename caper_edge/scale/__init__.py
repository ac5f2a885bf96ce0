"""Weight sensing: the scale MCU's serial protocol, its reader, calibration and weight events.

See docs/scale_protocol.md (wire format, reader, clock mapping, calibration) and
docs/weight_events.md (the event detector).
"""

from __future__ import annotations

from .protocol import checksum, encode_sample, encode_status

__all__ = ["checksum", "encode_sample", "encode_status"]
