"""Scale: weight-event detection (C++) and the protocol decoder.

Input: simulated load-cell traces from :mod:`caper_edge.scale.scenarios` ("steps" and "bumpy":
items of 5 g .. 5 kg placed, dropped and removed, hand pushes, ring-downs, rolling, bumps,
drift; 80 Hz, 1.5 g noise), concatenated into one long stream.

- ``weight events``: ``WeightEventDetector.push_many`` over the whole stream. The peer is a
  straightforward pure-Python moving-variance detector of the kind the published systems
  describe (AIM3S: a moving variance over a window, stable/active/stable, delta W between the
  stable windows), with incremental sums: what one would write without a native module.
  Besides speed, both detectors' accuracy on the same traces goes in the JSON: the p95 of
  |error| / max(2 g, 1 % |dW|), misses, false events, and our decision latency after the
  ring-down ends (percentiles).
- ``decoder``: ``ScaleDecoder.feed`` over 1 MB of protocol lines with 10 % garbage, in 4 KB
  chunks as the reader sees them, against a regex-over-the-buffer parser (not incremental,
  no resynchronisation accounting: an upper bound of what a regex alone can do).
"""

from __future__ import annotations

import re
from collections import deque

import numpy as np

from caper_edge.scale import ScaleDecoder, WeightEventDetector, encode_sample
from caper_edge.scale.protocol import checksum
from caper_edge.scale.scenarios import Score, build, score

from .harness import Case

NS = 1_000_000_000


# ---------------------------------------------------------------------------------------------
# Peer: a moving-variance detector in plain Python
# ---------------------------------------------------------------------------------------------


class _Event:
    __slots__ = ("delta_g", "kind", "t_decided_ns", "t_start_ns")

    def __init__(self, t_start_ns: int, t_decided_ns: int, delta_g: float) -> None:
        self.kind = "settled"
        self.t_start_ns, self.t_decided_ns, self.delta_g = t_start_ns, t_decided_ns, delta_g


class MovingVarianceDetector:
    """Stable when the variance of the last ``window`` samples is below ``var_threshold``;
    an event is the change of the stable-window mean across an active phase."""

    def __init__(self, window: int = 16, std_threshold_g: float = 2.4, min_delta_g: float = 3.0) -> None:
        self.window, self.var_threshold, self.min_delta = window, std_threshold_g**2, min_delta_g
        self.buf: deque[float] = deque()
        self.s = self.ss = 0.0
        self.stable_mean: float | None = None
        self.active = False
        self.t_start = 0

    def push(self, t_ns: int, g: float) -> list[_Event]:
        buf = self.buf
        buf.append(g)
        self.s += g
        self.ss += g * g
        if len(buf) > self.window:
            old = buf.popleft()
            self.s -= old
            self.ss -= old * old
        if len(buf) < self.window:
            return []
        n = self.window
        mean = self.s / n
        var = max(self.ss / n - mean * mean, 0.0) * n / (n - 1)
        if var > self.var_threshold:
            if not self.active:
                self.active, self.t_start = True, t_ns
            return []
        out = []
        if self.active and self.stable_mean is not None and abs(mean - self.stable_mean) >= self.min_delta:
            out.append(_Event(self.t_start, t_ns, mean - self.stable_mean))
        if self.active or self.stable_mean is None:
            self.stable_mean = mean
        self.active = False
        return out

    def push_many(self, t_ns: np.ndarray, grams: np.ndarray) -> list[_Event]:
        out: list[_Event] = []
        for t, g in zip(t_ns.tolist(), grams.tolist()):
            out += self.push(t, g)
        return out


# ---------------------------------------------------------------------------------------------
# Traces
# ---------------------------------------------------------------------------------------------


def _traces(seeds: range):
    """(t_ns, per-cell grams, flags, ground-truth changes shifted onto one time line)."""
    ts, cells, flags, changes = [], [], [], []
    offset = 0
    for name in ("steps", "bumpy"):
        for seed in seeds:
            sc = build(name, None, seed)
            t, c, f = sc.calibrated()
            ts.append(t + offset)
            cells.append(c)
            flags.append(f)
            changes.append((offset, sc.changes))
            offset += sc.duration_ns + 5 * NS      # a gap between traces: the detector treats it as unobserved
    return np.concatenate(ts), np.ascontiguousarray(np.concatenate(cells)), np.concatenate(flags), changes


def _score_all(events, changes) -> Score:
    total = Score.empty()
    bounds = [off for off, _ in changes] + [np.iinfo(np.int64).max]
    for k, (offset, truth) in enumerate(changes):
        # An event whose activity began before this trace is the detector rightly reporting the
        # change across the gap between two traces (a different basket): not part of the score.
        mine = [e for e in events if bounds[k] <= e.t_decided_ns < bounds[k + 1] and e.t_start_ns >= bounds[k]]
        shifted = [_Shifted(e, offset) for e in mine]
        total = total.merge(score(truth, shifted))
    return total


class _Shifted:
    """An event moved back onto its trace's own time line."""

    def __init__(self, e, offset: int) -> None:
        self.kind, self.delta_g = e.kind, e.delta_g
        self.t_start_ns, self.t_decided_ns = e.t_start_ns - offset, e.t_decided_ns - offset


def _summary(s: Score, prefix: str) -> dict:
    ratio = s.error_ratio
    out = {
        f"{prefix}changes_matched": int(ratio.size),
        f"{prefix}missed": int(s.missed),
        f"{prefix}false_events": len(s.extra),
        f"{prefix}error_ratio_p95": float(np.percentile(ratio, 95)) if ratio.size else None,
        f"{prefix}abs_error_g_p95": float(np.percentile(np.abs(s.error_g), 95)) if ratio.size else None,
    }
    if prefix == "" and s.latency_s.size:
        pct = np.percentile(s.latency_s, [5, 25, 50, 75, 95, 99])
        out["latency_after_ringdown_s"] = dict(zip(["p5", "p25", "p50", "p75", "p95", "p99"], map(float, pct)))
    return out


# ---------------------------------------------------------------------------------------------
# Decoder input and peer
# ---------------------------------------------------------------------------------------------

_LINE = re.compile(rb"\$(CW,(\d{1,5}),(\d{1,10}),(-?\d{1,8}),(-?\d{1,8}),(-?\d{1,8}),(-?\d{1,8}),([0-9A-Fa-f]{1,2}))"
                   rb"\*([0-9A-Fa-f]{2})\r?\n")


def regex_parse(buf: bytes) -> list[tuple]:
    out = []
    for m in _LINE.finditer(buf):
        if checksum(m[1]) == int(m[9], 16):
            out.append((int(m[2]), int(m[3]), (int(m[4]), int(m[5]), int(m[6]), int(m[7])), int(m[8], 16)))
    return out


def _decoder_stream(nbytes: int = 1 << 20) -> bytes:
    rng = np.random.default_rng(5)
    parts, size, i = [], 0, 0
    while size < nbytes:
        if rng.random() < 0.1:
            junk = rng.integers(0, 256, size=int(rng.integers(1, 60)), dtype=np.uint8).tobytes()
            parts.append(junk)
            size += len(junk)
        line = encode_sample(i, 12 * i, [int(v) for v in rng.integers(-(2**22), 2**22, size=4)], i % 8)
        parts.append(line)
        size += len(line)
        i += 1
    return b"".join(parts)


def _feed_chunks(stream: bytes, chunk: int = 4096) -> int:
    d = ScaleDecoder()
    n = 0
    for pos in range(0, len(stream), chunk):
        n += len(d.feed(stream[pos : pos + chunk]))
    return n


# ---------------------------------------------------------------------------------------------


def cases(quick: bool) -> list[Case]:
    seeds = range(3) if quick else range(10)
    t, cells, flags, changes = _traces(seeds)
    totals = np.ascontiguousarray(cells.sum(axis=1))

    ours = _score_all(WeightEventDetector().push_many(t, cells, flags), changes)
    peer = _score_all(MovingVarianceDetector().push_many(t, totals), changes)
    extra = {**_summary(ours, ""), **_summary(peer, "peer_"), "samples": int(t.size)}

    stream = _decoder_stream()
    n_lines = _feed_chunks(stream)
    assert_same = len(regex_parse(stream))
    return [
        Case(
            suite="scale",
            name=f"weight events push_many ({t.size} samples)",
            ours=lambda: WeightEventDetector().push_many(t, totals, flags),
            peer=lambda: MovingVarianceDetector().push_many(t, totals),
            peer_name="python moving variance",
            items=int(t.size),
            item_unit="samples",
            notes="per-sample C++ detector incl. provisional events; latency/accuracy on the same traces in extra",
            extra=extra,
        ),
        Case(
            suite="scale",
            name="weight events push_many, per-cell grams",
            ours=lambda: WeightEventDetector().push_many(t, cells, flags),
            items=int(t.size),
            item_unit="samples",
            notes="(n, 4) input: also per-cell deltas and centre of pressure",
        ),
        Case(
            suite="scale",
            name=f"decoder feed 1 MB in 4 KB chunks ({n_lines} lines)",
            ours=lambda: _feed_chunks(stream),
            peer=lambda: regex_parse(stream),
            peer_name="regex over the whole buffer",
            items=len(stream),
            item_unit="bytes",
            notes="10 % garbage; the peer is not incremental and counts nothing",
            extra={"lines": n_lines, "peer_lines": assert_same},
        ),
    ]
