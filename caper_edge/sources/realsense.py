"""Live Intel RealSense camera: colour + depth aligned to colour, on the host clock, reconnecting.

pyrealsense2 is imported only when a RealSenseSource is created, so the package (and every other
source) works where pyrealsense2 or libusb is missing.

The colour and depth sensors are opened directly (not through ``rs2::pipeline``) and feed a
``rs2::syncer``, which groups frames by hardware timestamp into framesets; ``rs2::align`` maps
depth into the colour camera. This is the same code path for a real camera and for a
``software_device`` (which ``rs2::pipeline`` cannot select in librealsense 2.59), so the tests
drive exactly what runs on the cart. Depth may run slower than colour: a colour frame without
depth in its frameset takes the latest aligned depth if it is within ``max_depth_gap_ms``.

Hardware timestamps (``get_timestamp()``, milliseconds) are mapped onto the host monotonic clock
by :class:`~caper_edge.sources.clock.ClockMapper`. When no frame arrives for
``frame_timeout_ms`` (an unplug, a USB reset) the sensors are closed and the device is opened
again with exponential backoff between ``reconnect_min_s`` and ``reconnect_max_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import InputError
from .clock import ClockMapper
from .messages import CameraInfo, Frame, Message, SourceStats

__all__ = ["RealSenseSource", "import_pyrealsense2"]

log = logging.getLogger(__name__)


def import_pyrealsense2():
    """The pyrealsense2 module, or InputError saying what is missing."""
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        hint = " (the libusb-1.0-0 system library is missing)" if "libusb" in str(exc) else " (pip install pyrealsense2)"
        raise InputError(f"RealSense camera support needs pyrealsense2: {exc}{hint}") from None
    return rs


class RealSenseSource:
    """Frames from a RealSense camera.

    Parameters
    ----------
    config:
        A :class:`caper_edge.config.CameraConfig` (default: the ``[camera]`` defaults).
    device_factory:
        Returns the ``rs.device`` to open (called again on every reconnect). Default: the camera
        with ``config.serial`` (or the first one) from a fresh ``rs.context``.
    clock:
        Host clock in nanoseconds (``time.monotonic_ns``); tests may replace it.
    """

    def __init__(self, config: Any = None, *, device_factory: Callable[[], Any] | None = None,
                 clock: Callable[[], int] = time.monotonic_ns):
        if config is None:
            from ..config import load

            config = load().camera
        self.rs = import_pyrealsense2()
        self.config = config
        self.device_factory = device_factory or self._find_device
        self.clock = clock
        self.stats = SourceStats()
        self.camera: CameraInfo | None = None
        self.mapper = ClockMapper(window=int(config.fps * 10))
        self._closed = False
        self._sensors: list[Any] = []
        self._sync = None
        self._depth_scale_mm = 1.0
        self._options_applied: dict[str, float] = {}

    # Device ------------------------------------------------------------------------------------

    def _find_device(self):
        rs = self.rs
        devices = rs.context().query_devices()
        for dev in devices:
            serial = dev.get_info(rs.camera_info.serial_number) if dev.supports(rs.camera_info.serial_number) else ""
            if not self.config.serial or serial == self.config.serial:
                return dev
        want = f"serial {self.config.serial}" if self.config.serial else "any camera"
        raise InputError(f"no RealSense camera found ({want}; {devices.size()} device(s) connected)")

    def _open(self) -> None:
        rs, cfg = self.rs, self.config
        dev = self.device_factory()
        color_sensor, color_profile = self._profile(dev, rs.stream.color, rs.format.rgb8, cfg.fps)
        depth_sensor, depth_profile = self._profile(dev, rs.stream.depth, rs.format.z16, cfg.depth_fps)
        self._apply_exposure(color_sensor)
        units = depth_sensor.get_option(rs.option.depth_units) if depth_sensor.supports(rs.option.depth_units) else 0.001
        self._depth_scale_mm = float(units) * 1000.0
        intr = color_profile.as_video_stream_profile().get_intrinsics()
        self.camera = CameraInfo(intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy,
                                 "plumb_bob", tuple(float(c) for c in intr.coeffs), "camera_color_optical_frame")
        self._sync = rs.syncer()
        self._align = rs.align(rs.stream.color)
        same = color_sensor.get_info(rs.camera_info.name) == depth_sensor.get_info(rs.camera_info.name)
        sensors = [color_sensor] if same else [color_sensor, depth_sensor]
        if same:
            color_sensor.open([color_profile, depth_profile])
        else:
            color_sensor.open(color_profile)
            depth_sensor.open(depth_profile)
        self._sensors = sensors
        for s in sensors:
            s.start(self._sync)

    def _profile(self, dev, stream, fmt, fps: int):
        cfg = self.config
        found = []
        for sensor in dev.query_sensors():
            for p in sensor.get_stream_profiles():
                if p.stream_type() != stream or not p.is_video_stream_profile():
                    continue
                v = p.as_video_stream_profile()
                found.append(f"{v.width()}x{v.height()}@{p.fps()} {p.format()}")
                if p.format() == fmt and v.width() == cfg.width and v.height() == cfg.height and p.fps() == fps:
                    return sensor, p
        raise InputError(f"camera offers no {stream} profile {cfg.width}x{cfg.height}@{fps} {fmt}; it offers: {', '.join(found) or 'none'}")

    def _apply_exposure(self, sensor) -> None:
        rs, cfg = self.rs, self.config
        wanted = [(rs.option.enable_auto_exposure, 1.0 if cfg.auto_exposure else 0.0)]
        if not cfg.auto_exposure:
            wanted += [(rs.option.exposure, float(cfg.exposure_us)), (rs.option.gain, float(cfg.gain))]
        wanted.append((rs.option.enable_auto_white_balance, 1.0 if cfg.white_balance_k == 0 else 0.0))
        if cfg.white_balance_k:
            wanted.append((rs.option.white_balance, float(cfg.white_balance_k)))
        for option, value in wanted:
            if sensor.supports(option):
                try:
                    sensor.set_option(option, value)
                except RuntimeError as exc:
                    r = sensor.get_option_range(option)
                    raise InputError(f"camera rejects {option} = {value:g} (range {r.min:g}..{r.max:g} step {r.step:g}): {exc}; "
                                     "check [camera] in the config") from None
                self._options_applied[str(option)] = value
            else:
                log.debug("colour sensor has no option %s; not set", option)

    def _shutdown(self) -> None:
        for s in self._sensors:
            for step in (s.stop, s.close):
                try:
                    step()
                except RuntimeError:
                    pass  # already stopped / the device is gone
        self._sensors = []

    # Frames --------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Message]:
        backoff = self.config.reconnect_min_s
        connected = False
        last_depth: tuple[int, np.ndarray] | None = None
        max_gap_ns = int(self.config.max_depth_gap_ms * 1e6)
        try:
            while not self._closed:
                if not connected:
                    try:
                        self._open()
                        connected = True
                    except (RuntimeError, InputError) as exc:
                        if self.stats.reconnects == 0 and not self.stats.frames and isinstance(exc, InputError):
                            raise
                        log.warning("camera not available (%s); retrying in %.1f s", exc, backoff)
                        self._sleep(backoff)
                        backoff = min(backoff * 2, self.config.reconnect_max_s)
                        continue
                try:
                    ok, frames = self._sync.try_wait_for_frames(self.config.frame_timeout_ms)
                except RuntimeError as exc:
                    ok, frames = False, None
                    log.warning("camera error: %s", exc)
                if not ok:
                    if self._closed:
                        break
                    log.warning("no frame for %d ms: reconnecting", self.config.frame_timeout_ms)
                    self._shutdown()
                    connected = False
                    self.stats.reconnects += 1
                    last_depth = None
                    continue
                backoff = self.config.reconnect_min_s
                frame, last_depth = self._frame(frames, last_depth, max_gap_ns)
                if frame is not None:
                    yield frame
        finally:
            self._shutdown()

    def _frame(self, frames, last_depth, max_gap_ns: int):
        arrival = self.clock()
        if not frames.is_frameset():
            return None, last_depth
        fs = frames.as_frameset()
        color = fs.get_color_frame()
        depth = fs.get_depth_frame()
        if not color:
            if depth:
                self.stats.depth_frames += 1  # depth alone: it pairs with the next colour frame
            return None, last_depth
        hw_ns = int(round(color.get_timestamp() * 1e6))
        t_ns = self.mapper.map(hw_ns, arrival)
        if depth:
            self.stats.depth_frames += 1
            aligned = self._align.process(fs).get_depth_frame()
            d = np.asanyarray(aligned.get_data()).copy()
            if self._depth_scale_mm != 1.0:
                d = np.clip(np.rint(d * self._depth_scale_mm), 0, 65535).astype(np.uint16)
            d.flags.writeable = False
            depth_t = t_ns + int(round(depth.get_timestamp() * 1e6)) - hw_ns
            last_depth = (depth_t, d)
            self.stats.depth_frames_used += 1
        rgb = np.asanyarray(color.get_data()).copy()
        pair = last_depth if last_depth is not None and abs(last_depth[0] - t_ns) <= max_gap_ns else None
        if pair is None:
            self.stats.frames_without_depth += 1
        frame = Frame(t_ns, self.stats.frames, rgb, pair[1] if pair else None, pair[0] if pair else None, self.camera)
        self.stats.frames += 1
        return frame, last_depth

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._closed and time.monotonic() < end:
            time.sleep(min(0.05, end - time.monotonic()) if end > time.monotonic() else 0)

    def close(self) -> None:
        """Stop: the iterator ends at its next wait (within ``frame_timeout_ms``)."""
        self._closed = True

    def __enter__(self) -> RealSenseSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
