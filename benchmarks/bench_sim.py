"""Simulator: frames per second on one core, and the size of the bags it writes.

Input: the ``busy`` scenario (seed 1): products coming and going, one or two hands with forearms
in view much of the time, the cart pushed now and then (camera shake), depth on every second
frame; frames are rendered in time order, cycling over the first 30 s.

- ``render``: one frame as SimulatorSource produces it (colour, every second frame depth,
  ground-truth boxes). The peer is the straightforward way to composite the same scene with the
  same sprites: every object warped and z-tested over the whole 640x480 frame and the static
  scene re-drawn every frame (no regions of interest, no static-layer cache).
- ``render + bag encode``: the same plus what writing a bag adds per frame (JPEG q85, CDR of
  the depth image, camera info and objects); no peer. Its JSON carries ``bag_mb_per_min``,
  measured by writing a bag of the same scenario, so the docs' bag sizes come from here.
- ``dataset image``: one random training scene rendered (``caper_edge.sim.dataset``); no peer.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

from caper_edge.bags import encode_jpeg, ros
from caper_edge.sim import Simulator, write_bag
from caper_edge.sim import dataset as dataset_mod
from caper_edge.sim import render as render_mod
from caper_edge.sim.catalog import catalog
from caper_edge.sim.geometry import CartGeometry

from .harness import Case

FPS = 30.0


class _Cycle:
    """Renders frames first, first+1, ... of a planned session, wrapping after ``frames``."""

    def __init__(self, first: int, frames: int):
        end_s = (first + frames) / FPS + 5
        self.sim = Simulator("busy", seed=1, duration_s=end_s)
        self.sim._plan_until(end_s)
        self.first, self.frames = first, frames
        self.k = 0

    def next_time(self) -> tuple[float, int]:
        k = self.first + self.k
        self.k = (self.k + 1) % self.frames
        return k / FPS, k

    def hand_share(self) -> float:
        """Fraction of the cycled frames with at least one hand in view."""
        busy = 0
        for k in range(self.first, self.first + self.frames):
            _, _, moving = self.sim.world.scene_at(k / FPS, FPS)
            busy += any(m.cls == "hand" for m in moving)
        return busy / self.frames

    def ours(self):
        t, k = self.next_time()
        return self.sim.render_at(t, k % 2 == 0, seed=k)

    def naive(self):
        t, k = self.next_time()
        g = self.sim.geom
        with mock.patch.object(render_mod, "_clip", lambda *a: (0, 0, g.width, g.height)):
            self.sim._static = None  # no cache: the whole scene every frame
            return self.sim.render_at(t, k % 2 == 0, seed=k)

    def encoded(self):
        res = self.ours()
        t = 10**10 + self.k * 33_333_333
        ros.typestore().serialize_cdr(ros.compressed_image(t, "c", encode_jpeg(res.color, 85), "jpeg"), ros.COMPRESSED_IMAGE)
        if res.depth is not None:
            ros.typestore().serialize_cdr(ros.image(t, "c", res.depth, "16UC1"), ros.IMAGE)
        ros.typestore().serialize_cdr(ros.string(json.dumps(res.objects)), ros.STRING)
        return res


def _bag_mb_per_min(seconds: float) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        stats = write_bag(Path(tmp) / "bag", "busy", 1, seconds, jpeg_quality=85)
        return stats.mb_per_minute


def cases(quick: bool) -> list[Case]:
    # Skip the first seconds (an empty basket) so every case renders a filling basket.
    first, frames = 150, (300 if quick else 900)
    ours, peer, enc = _Cycle(first, frames), _Cycle(first, frames), _Cycle(first, frames)
    share = _Cycle(first, frames).hand_share()
    mb_min = _bag_mb_per_min(6.0 if quick else 30.0)
    dataset_renderer = render_mod.Renderer(CartGeometry(), 0)
    pick = dataset_mod._picker(list(catalog()), (), 0.0)
    counter = [0]

    def dataset_image():
        counter[0] += 1
        return dataset_mod._scene(dataset_renderer, np.random.default_rng(counter[0]), pick, counter[0])

    note = (f"busy scenario seed 1, frames {first}..{first + frames - 1} cycled ({share:.0%} with a hand in view), "
            "depth every 2nd frame, one core")
    return [
        Case("sim", "render 640x480 (colour + depth/2 + boxes)", ours.ours, peer.naive,
             peer_name="full-frame compositing, no static cache", items=1, item_unit="frame", notes=note),
        Case("sim", "render + bag encode (JPEG q85, CDR)", enc.encoded, items=1, item_unit="frame",
             notes=note + "; no peer", extra={"bag_mb_per_min": round(mb_min, 1)}),
        Case("sim", "dataset image (random scene)", dataset_image, items=1, item_unit="image", notes="no peer"),
    ]

