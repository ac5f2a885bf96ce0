"""Pair each colour frame with the nearest depth frame while keeping the stream in time order.

Depth may run at 10-15 FPS beside colour at 30 FPS, and a depth frame may arrive a little before
or after the colour frame it belongs with. A colour frame is therefore held until either the first
depth frame after it arrives (then the nearer of the last depth before and that one wins) or the
stream has moved more than ``max_gap_ns`` past it (then only the one before can be near enough).
Everything else (scale lines, ground truth) waits behind held frames, so the output stays in
time order; an item is also held until the stream has moved past its timestamp, so messages
carrying the same timestamp (a frame's ground-truth objects) can join it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["DepthPairer", "Paired"]


@dataclass
class Paired:
    """An item released by :class:`DepthPairer`; ``depth`` is the chosen (t_ns, payload) or None."""

    kind: str  # "color" or "other"
    t_ns: int
    payload: Any
    depth: tuple[int, Any] | None = None
    before: tuple[int, Any] | None = None
    decided: bool = True
    passed: bool = False


class DepthPairer:
    """Feed items in time order with :meth:`push_color`, :meth:`push_depth`, :meth:`push_other`;
    each returns the items released, in order. :meth:`finish` releases the rest.

    Parameters
    ----------
    max_gap_ns:
        The farthest a depth frame may be from a colour frame and still pair with it; farther
        frames leave ``depth`` None. Larger values pair across dropped depth frames but may give
        a hand depth from a visibly different moment.
    has_depth:
        False when the stream has no depth at all: colour frames are never held for depth.
    """

    def __init__(self, max_gap_ns: int, has_depth: bool = True):
        if max_gap_ns < 0:
            raise ValueError(f"max_gap_ns must be >= 0, got {max_gap_ns}")
        self.max_gap_ns = max_gap_ns
        self.has_depth = has_depth
        self._pending: deque[Paired] = deque()
        self._last_depth: tuple[int, Any] | None = None
        self._undecided = 0

    def push_color(self, t_ns: int, payload: Any) -> list[Paired]:
        self._advance(t_ns)
        item = Paired("color", t_ns, payload, before=self._last_depth, decided=not self.has_depth)
        self._undecided += not item.decided
        self._pending.append(item)
        return self._release()

    def push_depth(self, t_ns: int, payload: Any) -> list[Paired]:
        self._advance(t_ns)
        depth = (t_ns, payload)
        if self._undecided:
            for item in self._pending:
                if not item.decided:
                    self._decide(item, after=depth)
        self._last_depth = depth
        return self._release()

    def push_other(self, t_ns: int, payload: Any) -> list[Paired]:
        self._advance(t_ns)
        self._pending.append(Paired("other", t_ns, payload))
        return self._release()

    def pending_color(self, t_ns: int) -> Paired | None:
        """The held colour frame with exactly this timestamp, if any (to attach data to it)."""
        for item in reversed(self._pending):
            if item.kind == "color" and item.t_ns == t_ns:
                return item
            if item.t_ns < t_ns:
                break
        return None

    def finish(self) -> list[Paired]:
        for item in self._pending:
            if not item.decided:
                self._decide(item, after=None)
            item.passed = True
        return self._release()

    # -------------------------------------------------------------------------------------------

    def _advance(self, t_ns: int) -> None:
        """The stream has reached ``t_ns``: mark older items passed, give up waiting where useless."""
        for item in self._pending:
            if item.t_ns >= t_ns:
                break
            item.passed = True
            if not item.decided and t_ns - item.t_ns > self.max_gap_ns:
                self._decide(item, after=None)

    def _decide(self, item: Paired, after: tuple[int, Any] | None) -> None:
        best, best_gap = None, None
        for cand in (item.before, after):  # "before" first: ties go to the earlier frame
            if cand is None:
                continue
            gap = abs(cand[0] - item.t_ns)
            if gap <= self.max_gap_ns and (best_gap is None or gap < best_gap):
                best, best_gap = cand, gap
        item.depth = best
        item.decided = True
        self._undecided -= 1

    def _release(self) -> list[Paired]:
        out = []
        pending = self._pending
        while pending and pending[0].decided and pending[0].passed:
            out.append(pending.popleft())
        return out
