"""What fusion consumes: vision zone transitions with SKU candidates, and weight changes.

Both are plain frozen records so tests (and other producers) can build them by hand;
:func:`vision_events_from_tracks` turns one tracker update into :class:`VisionEvent` s and
:func:`weight_change` accepts the C++ :class:`caper_edge.scale.WeightEvent` or anything with the
same attributes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ENTERED", "GLIMPSE_GROUP", "GLIMPSE_SKU", "GLIMPSE_WEAK", "LEFT", "VisionEvent", "WeightChange", "candidates_of", "vision_events_from_tracks", "weight_change"]

ENTERED, LEFT = "entered", "left"
# What a glimpse's probability is (the third element of Fusion.add_glimpses' looks): one SKU's
# at glimpse_min_prob; its look-alike group's together at glimpse_min_prob (glimpse_groups);
# the larger of the two at glimpse_weak_min_prob only (a weak glimpse).
GLIMPSE_SKU, GLIMPSE_GROUP, GLIMPSE_WEAK = 0, 1, 2

Candidates = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class VisionEvent:
    """A track crossing the basket rim.

    kind : ``"entered"`` (entered_basket) or ``"left"`` (left_basket).
    track_id : the tracker's ID.
    t_ns : first observation in the new zone (when the item crossed), int64 ns.
    decided_t_ns : when the tracker committed the transition (>= t_ns).
    candidates : ((sku, probability), ...) best first: the track's SKU posterior top-k; the
        probabilities sum to at most 1 (the rest is spread over the other SKUs).
    in_place : for ``entered``, the track barely moved between its first observation and this
        transition: a resting item found again (after an occlusion, or at start-up) rather than
        one carried across the rim; for ``left``, a booked item's track went unseen inside the
        basket (lifted out under the hand, or only covered by it). Weak evidence: it may pair
        with a weight change but never raises ``unconfirmed_item`` or ``weight_mismatch`` and is
        easily explained away as bringing (or taking) nothing.
    floor_uv : where the item is on the normalised basket floor (u left to right, v front to
        rear, as the scale's centre of pressure), or None when unknown.
    continues : for the in-place ``entered`` of a new track, the track of a product carried in,
        its entry still undecided, that lay where this track was found a moment before (the
        replay loop's ``continue_max_dist`` / ``continue_max_gap_s``): the same product under a
        new track (the tracker lost it under the hand, or slid its track onto the hand).
        Fusion then takes the two looks as one product's; None when there is none.
    """

    kind: Literal["entered", "left"]
    track_id: int
    t_ns: int
    decided_t_ns: int
    candidates: Candidates = ()
    in_place: bool = False
    floor_uv: tuple[float, float] | None = None
    continues: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in (ENTERED, LEFT):
            raise ValueError(f"vision event kind = {self.kind!r}: expected 'entered' or 'left'")
        if self.decided_t_ns < self.t_ns:
            raise ValueError(f"vision event of track {self.track_id}: decided_t_ns {self.decided_t_ns} < t_ns {self.t_ns}")
        if self.continues is not None and not (self.kind == ENTERED and self.in_place and self.continues != self.track_id):
            raise ValueError(f"vision event of track {self.track_id}: continues = {self.continues!r} needs an in-place "
                             f"'entered' of another track (kind {self.kind!r}, in_place {self.in_place})")
        object.__setattr__(self, "candidates", _check_candidates(self.candidates, f"vision event of track {self.track_id}"))

    @property
    def top1(self) -> tuple[str | None, float]:
        return self.candidates[0] if self.candidates else (None, 0.0)


@dataclass(frozen=True)
class WeightChange:
    """A decided change of the static load (the fields of :class:`caper_edge.scale.WeightEvent`).

    kind : ``"provisional"``, ``"settled"`` or ``"cancelled"``; a provisional change is followed
        by a settled or cancelled one with the same ``t_start_ns``.
    delta_g, sigma_g : the change and its standard error, grams (negative: weight left).
    cop : (u, v) centre of pressure of the change on the normalised floor, or None.
    """

    kind: str
    t_start_ns: int
    t_settled_ns: int
    t_decided_ns: int
    delta_g: float
    sigma_g: float
    cop: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("provisional", "settled", "cancelled"):
            raise ValueError(f"weight change kind = {self.kind!r}: expected provisional, settled or cancelled")
        if not math.isfinite(self.delta_g) or not (math.isfinite(self.sigma_g) and self.sigma_g >= 0):
            raise ValueError(f"weight change delta_g = {self.delta_g!r}, sigma_g = {self.sigma_g!r}: expected finite, sigma >= 0")
        if not self.t_start_ns <= self.t_settled_ns <= self.t_decided_ns:
            raise ValueError(f"weight change times must satisfy t_start_ns <= t_settled_ns <= t_decided_ns, got "
                             f"{self.t_start_ns}, {self.t_settled_ns}, {self.t_decided_ns}")


def weight_change(event: Any) -> WeightChange:
    """A :class:`WeightChange` from a WeightEvent (or a WeightChange, returned as is)."""
    if isinstance(event, WeightChange):
        return event
    cop = getattr(event, "cop", None)
    return WeightChange(str(event.kind), int(event.t_start_ns), int(event.t_settled_ns), int(event.t_decided_ns),
                        float(event.delta_g), float(event.sigma_g), None if cop is None else (float(cop[0]), float(cop[1])))


def _check_candidates(candidates: Any, what: str) -> Candidates:
    out = []
    total = 0.0
    for i, pair in enumerate(candidates):
        try:
            sku, p = pair
        except (TypeError, ValueError):
            raise ValueError(f"{what}: candidate {i} = {pair!r}, expected (sku, probability)") from None
        if not isinstance(sku, str) or not sku:
            raise ValueError(f"{what}: candidate {i} sku = {sku!r}, expected a non-empty string")
        p = float(p)
        if not (0.0 <= p <= 1.0):
            raise ValueError(f"{what}: candidate {sku} probability = {p!r}, expected 0..1")
        total += p
        out.append((sku, p))
    if total > 1.0 + 1e-4:
        raise ValueError(f"{what}: candidate probabilities sum to {total:.4f}, expected at most 1")
    if len({s for s, _ in out}) != len(out):
        raise ValueError(f"{what}: a candidate SKU is listed twice: {[s for s, _ in out]}")
    return tuple(sorted(out, key=lambda c: -c[1]))


def candidates_of(sku_ids: Sequence[int], sku_prob: Sequence[float], skus: Sequence[str]) -> Candidates:
    """Tracker columns (``Tracks.sku_ids`` row, ``Tracks.sku_prob`` row) to (sku, p) pairs;
    ``skus`` maps a column to its SKU id (the gallery's order). -1 columns are padding."""
    out = []
    for col, p in zip(sku_ids, sku_prob):
        col = int(col)
        if col < 0 or p <= 0:
            continue
        if col >= len(skus):
            raise ValueError(f"tracker SKU column {col} is outside the {len(skus)} gallery SKUs")
        out.append((skus[col], min(1.0, float(p))))
    return tuple(out)


def vision_events_from_tracks(tracks: Any, all_tracks: Any, skus: Sequence[str],
                              travel: Mapping[int, float] | None = None, in_place_max_travel: float = 0.0,
                              floor: Mapping[int, tuple[float, float]] | None = None) -> list[VisionEvent]:
    """The entered/left transitions of one tracker update as :class:`VisionEvent` s.

    ``tracks`` is what ``Tracker.update`` returned (its ``transitions``); ``all_tracks`` is
    ``Tracker.all_tracks()`` after the same update (the SKU posterior of a track that left the
    frame's matched set is found there). ``expired_in_basket`` transitions are not events: an
    item that is no longer seen while in the basket is still in the basket. ``travel`` maps a
    track to how far (box diagonals) it has moved from where it was first seen; an entering track
    that moved at most ``in_place_max_travel`` is ``in_place``. ``floor`` maps a track to its
    last known floor position.
    """
    out = []
    if not tracks.transitions:
        return out
    rows = {int(t): i for i, t in enumerate(all_tracks.track_id)}
    for tr in tracks.transitions:
        if tr.kind not in ("entered_basket", "left_basket"):
            continue
        i = rows.get(int(tr.track_id))
        cands: Candidates = ()
        if i is not None:
            cands = candidates_of(all_tracks.sku_ids[i], all_tracks.sku_prob[i], skus)
        kind = ENTERED if tr.kind == "entered_basket" else LEFT
        moved = travel.get(int(tr.track_id), math.inf) if travel is not None else math.inf
        in_place = kind == ENTERED and moved <= in_place_max_travel
        uv = floor.get(int(tr.track_id)) if floor is not None else None
        out.append(VisionEvent(kind, int(tr.track_id), int(tr.t_ns), int(tr.decided_t_ns), cands, in_place, uv))
    return out
