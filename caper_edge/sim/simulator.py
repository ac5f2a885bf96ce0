"""The simulator: a scenario planned into a world, rendered frame by frame, with its scale stream.

:meth:`Simulator.messages` yields, in time order, what a cart's sensors and the ground truth
produce: :class:`~caper_edge.sources.ScaleLine` (80 Hz protocol lines from the load-cell model,
``$CS`` status lines on connect and every 10 s), :class:`~caper_edge.sources.Frame` (colour
every 1/fps s with per-frame ground-truth objects; depth on every ``depth_every``-th frame, the
frames between carrying the latest depth as a bag replay pairs it), and
:class:`~caper_edge.sources.GroundTruthEvent` (emitted at the event's ``t_rest_ns``).

Everything derives from ``seed``: the same seed and version give the same messages, bit for bit.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator

from ..scale.loadcell import LoadCellModel
from ..scale.protocol import encode_status
from ..sources.messages import CameraInfo, Frame, GroundTruthEvent, Message, ScaleLine
from .catalog import Sku, catalog
from .geometry import CartGeometry
from .render import Effects, Renderer, StaticLayer
from .scenarios import DEFAULT_DURATION_S, plan
from .world import NS, World

__all__ = ["Simulator"]

LOOKAHEAD_S = 4.0     # plan this far ahead of the frame being rendered (> the scale chunk)
SCALE_CHUNK_S = 0.5   # load-cell samples are rendered in chunks of this length
FIRMWARE = "caper-sim-1.0"
DEPTH_LAG_NS = 2_000_000
SETTLE_TAIL_S = 1.0   # frames kept after the last change settles, when it settles after the duration
MAX_OVERRUN_S = 20.0  # at most this much past the duration


class Simulator:
    """One simulated session.

    Parameters
    ----------
    scenario, seed, duration_s:
        What happens (see :mod:`caper_edge.sim.scenarios`), the seed of everything, and the
        length (default: the scenario's own).
    fps, depth_every:
        Colour frame rate and the colour frames per depth frame (2: depth at 15 FPS).
    noise_sigma:
        Colour sensor noise in grey levels (1 sigma) before JPEG.
    calibration:
        Scale calibration (``offsets``/``gains``) the load-cell model inverts; default: the
        configuration's ``[scale.calibration]``.
    t0_ns:
        Host-clock time of the session start.
    """

    def __init__(
        self,
        scenario: str = "simple",
        seed: int = 0,
        duration_s: float | None = None,
        *,
        fps: float = 30.0,
        depth_every: int = 2,
        noise_sigma: float = 2.2,
        calibration=None,
        t0_ns: int = 10 * NS,
    ):
        if scenario not in DEFAULT_DURATION_S:
            raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(DEFAULT_DURATION_S)}")
        if not 1 <= fps <= 120:
            raise ValueError(f"fps must be in 1..120, got {fps}")
        if depth_every < 1:
            raise ValueError(f"depth_every must be >= 1, got {depth_every}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.scenario, self.seed = scenario, int(seed)
        self.duration_s = float(duration_s if duration_s is not None else DEFAULT_DURATION_S[scenario])
        if not self.duration_s > 0:
            raise ValueError(f"duration must be positive seconds, got {duration_s}")
        self.fps, self.depth_every, self.noise_sigma = float(fps), int(depth_every), float(noise_sigma)
        self.geom = CartGeometry()
        scale = LoadCellModel(calibration, seed=self.seed, start_ns=t0_ns, noise_g=1.5, drift_g_per_min=0.4, wander_g=0.3,
                              mcu_t0_ms=1000 + self.seed % 100000)
        self.world = World(self.seed, self.geom, t0_ns=t0_ns, loadcell=scale)
        self.renderer = Renderer(self.geom, self.seed)
        self.camera = CameraInfo(self.geom.width, self.geom.height, self.geom.fx, self.geom.fy, self.geom.cx, self.geom.cy)
        self.catalog: tuple[Sku, ...] = catalog()
        self.t0_ns = t0_ns
        self._planner = plan(scenario, self.world, self.duration_s)
        self._planned_until = 0.0
        self._static: tuple[tuple, StaticLayer] | None = None

    @property
    def frame_count(self) -> int:
        """Frames of the nominal duration; :meth:`messages` renders more while a change that
        started inside it has not settled (:meth:`_overruns`)."""
        return int(self.duration_s * self.fps)

    def _overruns(self, i: int) -> bool:
        """Frame ``i`` (at or past :attr:`frame_count`) is still needed: a weight change planned
        inside the duration settles, or its item comes to rest or leaves the basket, less than
        ``SETTLE_TAIL_S`` before it (a swap's second half begun near the end), within
        ``MAX_OVERRUN_S``."""
        t_ns = self.frame_time_ns(i)
        if t_ns >= self.t0_ns + int((self.duration_s + MAX_OVERRUN_S) * NS):
            return False
        tail = int(SETTLE_TAIL_S * NS)
        return any(max(ev["t_settled_ns"], ev["t_rest_ns"]) + tail > t_ns for ev in self.world.events)

    def frame_time_ns(self, i: int) -> int:
        """Capture time of frame ``i``: the nominal period plus a deterministic +-0.4 ms jitter."""
        jitter = ((i * 2654435761 + self.seed * 97) % 801) - 400
        return self.t0_ns + int(round(i * NS / self.fps)) + jitter * 1000

    def _plan_until(self, t: float) -> None:
        while self._planned_until < t:
            try:
                self._planned_until = next(self._planner)
            except StopIteration:
                self._planned_until = float("inf")

    # ------------------------------------------------------------------------------------------

    def messages(self) -> Iterator[Message]:
        """Every message of the session in time order (see the module docstring)."""
        scale_lines: deque[ScaleLine] = deque()
        scale_until = self.t0_ns
        events: list[tuple[int, int, dict]] = []
        seen_events = 0
        next_status = self.t0_ns
        depth, depth_t = None, None
        i = -1
        while True:
            i += 1
            if i >= self.frame_count and not self._overruns(i):
                break
            t_ns = self.frame_time_ns(i)
            t = (t_ns - self.t0_ns) / NS
            self._plan_until(t + LOOKAHEAD_S)
            if i == 0 and self.world.initial:
                items = self.initial_basket
                yield GroundTruthEvent(self.t0_ns, {"type": "basket_initial", "sku": None, "qty": sum(x["qty"] for x in items),
                                                     "items": items, "t_start_ns": self.t0_ns, "t_rest_ns": self.t0_ns})
            # Ground truth planned so far, released when its item has come to rest.
            for ev in self.world.events[seen_events:]:
                heapq.heappush(events, (ev["t_rest_ns"], seen_events, ev))
                seen_events += 1
            while scale_until < t_ns:
                block_end = scale_until + int(SCALE_CHUNK_S * NS)
                for ts, line in self.world.scale.lines(scale_until, block_end):
                    if ts >= next_status:
                        scale_lines.append(ScaleLine(next_status, encode_status(FIRMWARE, 4, self.world.scale.rate_hz)))
                        next_status += 10 * NS
                    scale_lines.append(ScaleLine(ts, line))
                scale_until = block_end
            # Release everything before the frame, merged by time.
            while scale_lines and scale_lines[0].t_ns < t_ns or events and events[0][0] < t_ns:
                if events and (not scale_lines or events[0][0] <= scale_lines[0].t_ns):
                    t_ev, _, ev = heapq.heappop(events)
                    yield GroundTruthEvent(t_ev, ev)
                else:
                    yield scale_lines.popleft()
            want_depth = i % self.depth_every == 0
            result = self.render_at(t, want_depth, seed=i)
            if want_depth:
                # The depth exposure is centred 2 ms after the colour one (unsynchronised sensors),
                # so the colour frame in between is nearer the depth before it: replaying the bag
                # pairs exactly as this stream does.
                depth, depth_t = result.depth, t_ns + DEPTH_LAG_NS
                depth.flags.writeable = False
            yield Frame(t_ns, i, result.color, depth, depth_t, self.camera, result.objects)
            if i % int(self.fps * 5) == 0:
                self.world.forget_before(t - 2.0)
        end_ns = self.frame_time_ns(i)
        for line in scale_lines:
            if line.t_ns < end_ns:
                yield line
        while events and events[0][0] < end_ns:
            t_ev, _, ev = heapq.heappop(events)
            yield GroundTruthEvent(t_ev, ev)

    def render_at(self, t: float, want_depth: bool, seed: int):
        """Render the world at session time ``t`` seconds (frames must be asked in time order)."""
        key, resting, moving = self.world.scene_at(t, self.fps)
        if self._static is None or self._static[0] != key:
            self._static = (key, self.renderer.render_static(resting))
        dx, dy = self.world.shake_at(t)
        dx1, dy1 = self.world.shake_at(t - 1.0 / self.fps)
        fx = Effects(
            gain=self.world.gain_at(t),
            shake_px=(dx, dy),
            shake_velocity_px=(dx - dx1, dy - dy1),
            noise_sigma=self.noise_sigma,
            seed=(self.seed * 1_000_003 + seed) & 0x7FFFFFFF,
        )
        return self.renderer.render(self._static[1], moving, fx, want_depth)

    @property
    def initial_basket(self) -> list[dict]:
        """Products in the basket before the session starts (the ``bumpy`` scenario)."""
        counts: dict[str, int] = {}
        for it in self.world.initial:
            counts[it.sku.sku] = counts.get(it.sku.sku, 0) + 1
        return [{"sku": k, "qty": v} for k, v in sorted(counts.items())]
