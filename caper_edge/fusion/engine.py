"""Fusion: vision zone transitions + weight changes -> basket events (docs/fusion.md).

The unit of decision is an *episode*: one weight change (provisional, then settled) and the
vision transitions of the same sign found near it in time (entered with a rise, left with a
fall). Steps:

1. **Pair.** A weight change claims the waiting vision transitions whose crossing time lies in
   ``[t_start - pair_before_s, t_settled + add_pair_after_s]`` (a fall: ``remove_pair_after_s``);
   a transition arriving later joins an open episode whose window holds it.
2. **Explain.** When the weight has settled, every combination of catalogue units (adds) or
   basket units (removals) that could make up delta W is scored (:mod:`.explain`): vision
   candidates are the labels' priors, the weight likelihood decides between them.
3. **Commit** the best explanation when its posterior reaches ``commit_posterior``; while it does
   not, hold the episode for more evidence (a late track, sharper SKU posteriors) up to
   ``decision_timeout_s`` after the weight settled, then commit it with its (lower) posterior.
4. **Mismatches.** A rise with no vision after ``unseen_hold_s`` -> ``unexpected_weight`` (a fall
   that fits basket units is an unseen removal instead, after ``unseen_removal_hold_s``); a
   confident vision SKU the weight rules out -> ``weight_mismatch``; a removal lifted within
   ``swap_window_s`` of an add settling (one hand visit exchanging products) -> ``weight_mismatch``
   naming both; an entering track with no weight change after ``weight_wait_s`` ->
   ``unconfirmed_item``. Unseen opposite changes that cancel (lift and put back) raise nothing,
   nor does a fall no basket units explain that weighs what an alarmed, unbooked rise did
   (that product taken out again, ``alarm_return_window_s``).
5. **Revise.** A unit an add booked on the weight alone is taken back (``item_removed`` +
   ``item_added`` at the add's time) when a track entering soon after confidently shows a
   weigh-alike of it that is not in the basket (``revise_guesses``); an add booked on tracks
   is explained again when a track's look at rest steadily contradicts it, or when the census
   steadily shows an unbooked product where a unit was booked on the weight alone, and revised
   when that explanation names other units (the audits, ``audit_window_s``); a removal the
   basket cannot explain re-reads a recent add as another of its explanations when the two
   changes together make that one likely (``reread_window_s``).

Every event's ``confidence`` is a posterior probability: for an item event, the marginal
probability that the SKU's count in this weight change is the reported ``qty``.

Fusion is a pure function of its inputs and their order (no clocks, no randomness), so a replay
gives the same events every time. Not thread-safe: one caller.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..basket import Basket
from ..catalog import Catalog, Product
from ..config import FusionConfig, default_table, from_table
from ..evaluation.metrics import box_iou
from ..events import Event
from .explain import Explanation, Option, PoolItem, explain, log_normal
from .inputs import ENTERED, GLIMPSE_GROUP, GLIMPSE_SKU, GLIMPSE_WEAK, LEFT, Candidates, VisionEvent, WeightChange, weight_change

__all__ = ["Fusion", "MODES", "default_fusion_config"]

MODES = ("fusion", "vision_only", "weight_only")
_NS = 1_000_000_000
_MAX_TRACKS = 3  # tracks explained jointly in one episode; more are treated as duplicates
_FLOOR_HISTORY = 64  # position changes kept per booked track (a few seconds of a moving one)
_HANDS_KEEP_NS = 30 * _NS  # hand counts kept beyond how long a committed add may be re-read
_PLACE_LOOKBACK_S = 1.0  # where a booked track "lay" before an entry: longer than a look change takes


def default_fusion_config(**overrides: Any) -> FusionConfig:
    """default.toml's ``[fusion]`` with ``overrides`` applied (validated)."""
    table = dict(default_table()["fusion"])
    for key, value in overrides.items():
        if key not in table:
            raise ValueError(f"unknown fusion parameter {key!r} (known: {', '.join(sorted(table))})")
        table[key] = value
    return from_table(FusionConfig, table, prefix="fusion.")


@dataclass
class _Vision:
    ev: VisionEvent
    deadline_ns: int
    candidates: Candidates
    may_revise: bool = False  # waits in the pool for a change of its own before it revises an add


@dataclass
class _Audit:
    """A committed add one of whose carried-in tracks may still show what it really brought
    (:meth:`Fusion.audit_look`)."""

    ep: "_Episode"                        # its units (ep.units) are what the add booked, revised or not
    track_id: int
    carriers: dict                        # booked SKU -> the track that carried it
    t_commit_ns: int
    since_ns: int | None = None           # start of the current run of contrary resting looks
    anchor: tuple[float, float] | None = None  # where the track lay when that run started


@dataclass
class _Episode:
    serial: int
    weight: WeightChange
    sign: int
    vision: list[_Vision] = field(default_factory=list)
    settled_at_ns: int | None = None      # when the settled change reached fusion
    committed: bool = False
    units: Counter = field(default_factory=Counter)  # committed units
    untracked: Counter = field(default_factory=Counter)  # ... of which no track carried (absorb late tracks)
    counted: Counter = field(default_factory=Counter)    # ... second units of a SKU a track was seen as (_revise)
    unit_conf: dict = field(default_factory=dict)        # committed SKU -> its event's confidence
    cache: tuple = ()                                  # (inputs key, explanations)
    second_looks: dict = field(default_factory=dict)   # the audits' explanations by inputs key (_explain_with)
    readings: list = field(default_factory=list)       # an add's explanations when committed (_reread)

    @property
    def settled(self) -> bool:
        return self.settled_at_ns is not None

    def holds(self, t_ns: int, cfg: FusionConfig, after_s: float | None = None) -> bool:
        """``t_ns`` lies in this change's pairing window (or, with ``after_s``, that long after it settled)."""
        if after_s is None:
            after_s = cfg.add_pair_after_s if self.sign > 0 else cfg.remove_pair_after_s
        return self.weight.t_start_ns - int(cfg.pair_before_s * _NS) <= t_ns <= self.weight.t_settled_ns + int(after_s * _NS)


class Fusion:
    """Turns :class:`VisionEvent` s and weight changes into draft :class:`~caper_edge.events.Event` s.

    Feed inputs in time order: :meth:`on_vision`, :meth:`on_weight`, and :meth:`tick` with the
    stream time (every frame / scale sample, or at least every 100 ms) so waiting decisions
    time out; :meth:`flush` at the end of a stream. Each call returns the events it decided
    (drafts: ``seq`` None); the basket (:attr:`basket`) is already updated for them.

    ``mode`` (default: the config's) is ``"fusion"``, ``"vision_only"`` (weight ignored: the
    ablation "weight off") or ``"weight_only"`` (vision ignored: "vision off").
    """

    def __init__(self, catalog: Catalog, config: FusionConfig | None = None, *, basket: Basket | None = None,
                 mode: str | None = None) -> None:
        if not isinstance(catalog, Catalog) or len(catalog) == 0:
            raise ValueError(f"catalog must be a non-empty Catalog, got {catalog!r:.80}")
        self.config = config if config is not None else default_fusion_config()
        self.mode = mode if mode is not None else self.config.mode
        if self.mode not in MODES:
            raise ValueError(f"fusion mode = {self.mode!r}: expected one of {', '.join(MODES)}")
        self.catalog = catalog
        self.basket = basket if basket is not None else Basket()
        self.now_ns = 0
        self._pool: list[_Vision] = []
        self._episodes: list[_Episode] = []
        self._serial = 0
        # Weight changes (by t_start_ns) cancelled against each other: later reports of the same
        # change are stale and must not open a new episode.
        self._cancelled_starts: deque[int] = deque(maxlen=64)
        # The census (census_units) of the last census_min_s: per frame, (t_ns, {sku: n}) for the
        # SKUs of which more resting products were seen confidently than the basket holds.
        self._census: deque[tuple[int, dict[str, int]]] = deque()
        # ... and (census_groups) per frame, (t_ns, {group: n}) of resting products seen
        # confidently only as a look-alike group, the group named by its first member (sorted).
        self._census_groups: deque[tuple[int, dict[str, int]]] = deque()
        # ... and (census_resting_looks) per frame, (t_ns, {track: look}) of the resting products'
        # tracks inside the basket: what each looks like now, not its track's long memory.
        self._resting_looks: deque[tuple[int, dict[int, Candidates]]] = deque()
        # Glimpses (glimpse_units): (t_ns, sku, probability, kind: GLIMPSE_SKU / _GROUP / _WEAK, box
        # or None) of item detections no confirmed track took (see add_glimpses for how long they
        # are kept).
        self._glimpses: deque[tuple[int, str, float, int, tuple[float, ...] | None]] = deque()
        # Tracks whose item fusion put into the basket (and has not taken out): their zone
        # flicker (a hand's shadow in the depth, an occlusion) must not read as new items.
        self._basket_version = 0
        self._track_floor: dict[int, tuple[float, float]] = {}  # latest floor position of pending tracks
        # Recent floor positions of booked tracks, (t_ns, (u, v)) kept when they change: where a
        # product lay when the weight began to fall is what a removal's centre of pressure measured.
        self._floor_history: dict[int, deque[tuple[int, tuple[float, float]]]] = {}
        self._tracks_in: set[int] = {u.track_id for line in self.basket for u in line.units if u.track_id is not None}
        self._continued: dict[int, int] = {}  # carried track -> the track found in place that continues it
        self._entering: frozenset[int] = frozenset()  # item tracks crossing into the basket, not yet decided
        self._audits: dict[int, _Audit] = {}  # booked track -> its add, while audit_window_s lasts
        self._census_audits: list[tuple[_Episode, int]] = []  # adds with weight guesses, commit time
        self._rereadable: deque[tuple[_Episode, int]] = deque()  # committed adds a removal may re-read, by commit time
        # Recent committed adds and removals for the exchange alarm, and
        # recent unseen removals (t_settled_ns, counts) for put-backs.
        self._recent_adds: list[tuple[int, Event]] = []      # (t_settled_ns, event)
        self._recent_removals: list[tuple[int, Event]] = []  # (t_start_ns, event)
        self._unseen_removals: list[tuple[int, tuple[tuple[str, int], ...]]] = []
        # Rises raised as unexpected_weight and never booked (t_settled_ns, delta_g, sigma_g):
        # a fall that weighs the same is that product leaving (alarm_return_window_s).
        self._alarmed_rises: deque[tuple[int, float, float]] = deque()
        # Hands in view (spare_hand_prior): (t_ns, n) each time the count changed, kept
        # _HANDS_KEEP_NS longer than a committed add may be re-read or audited.
        self._hands: deque[tuple[int, int]] = deque()
        self._hands_keep_ns = _HANDS_KEEP_NS + int(max(self.config.reread_window_s, self.config.audit_window_s) * _NS)
        self.stats = Counter()
        # Weight-sorted catalogue, for the "which SKUs fit this weight" candidates.
        self._by_weight = sorted(catalog, key=lambda p: (p.weight_g, p.sku))
        self._warm_up()

    def _warm_up(self) -> None:
        """Build the explanation search's tables of extra units for this catalogue now (cached
        per catalogue in fusion.explain), not on the first weight change: with no track the
        table holds every multiset of up to ``max_units`` catalogue SKUs, a tenth of a second to
        build, which would otherwise land on one frame of the real-time loop."""
        if self.mode == "vision_only":
            return
        cfg = self.config
        pool = self._add_pool([])
        spurious = [Option(None, 0, 0.0, 0.0, 0.0)]
        target = min(p.weight_g for p in self.catalog)  # few explanations fit: only the tables cost
        for n_tracks in range(0, min(_MAX_TRACKS, cfg.max_units) + 1):
            levels = [spurious] * n_tracks
            explain(target, cfg.scale_noise_g, levels=levels, pool=pool, extra_log_prior=self._extra_log_prior(n_tracks),
                    relative_error=cfg.relative_error, z_prune=cfg.z_prune, outlier_log_prior=math.log(cfg.outlier_prior),
                    outlier_range_g=cfg.outlier_range_g)

    def _extra_log_prior(self, n_tracks: int, spare_hand: bool = False) -> list[float]:
        """Log prior of 0, 1, ... extra (unseen) units beside ``n_tracks`` tracks: each a second
        product hidden in a hand (``extra_unit_prior``) or, with a ``spare_hand`` in view, the
        product that hand put down (``spare_hand_prior``; :meth:`_add_pool`)."""
        cfg = self.config
        if n_tracks:
            n_extra = max(0, min(2, cfg.max_units - n_tracks))
            prior = cfg.extra_unit_prior + (cfg.spare_hand_prior if spare_hand else 0.0)
            return [0.0] + [e * math.log(prior) for e in range(1, n_extra + 1)]
        return [-math.inf] + [(e - 1) * math.log(cfg.multi_unit_prior) for e in range(1, cfg.max_units + 1)]

    # =========================================================================================
    # Inputs
    # =========================================================================================

    def on_vision(self, ev: VisionEvent) -> list[Event]:
        """One entered/left transition (see :class:`VisionEvent`)."""
        if not isinstance(ev, VisionEvent):
            raise ValueError(f"on_vision expects a VisionEvent, got {type(ev).__name__}")
        self._advance(ev.decided_t_ns)
        self.stats[f"vision_{ev.kind}"] += 1
        if self.mode == "weight_only":
            return self._due()
        cands = self._known(ev.candidates)
        if self.mode == "vision_only":
            return self._vision_only(ev, cands) + self._due()
        if ev.kind == ENTERED and ev.track_id in self._tracks_in and not ev.in_place:
            # Already in the basket: usually a zone flicker, sometimes a second unit of the same
            # product taken over by the first one's track. Weak evidence either way.
            self.stats["vision_reentry"] += 1
            ev = dataclasses.replace(ev, in_place=True)
        if ev.continues is not None and self.mode == "fusion":
            joined = self._continue(ev, cands)
            if joined is not None:
                return joined + self._due()
        if not ev.in_place and self._is_flicker(ev, cands):
            return self._due()
        v = _Vision(ev, ev.decided_t_ns + int(self.config.weight_wait_s * _NS), cands)
        sign = 1 if ev.kind == ENTERED else -1
        open_eps = [e for e in self._episodes if not e.committed and e.sign == sign and self._accepts(e, ev)]
        if open_eps:
            ep = min(open_eps, key=lambda e: abs(e.weight.t_start_ns - ev.t_ns))
            ep.vision.append(v)
            return self._decide(ep) + self._due()
        if any(self._absorbs(e, v) for e in self._episodes if e.committed and e.sign == sign):
            self.stats["vision_absorbed"] += 1
            if ev.kind == ENTERED:
                self._tracks_in.add(ev.track_id)
            return self._due()
        found = self._revision_of(v) if sign > 0 else None
        if found is not None:
            if self.config.revise_wait_s <= 0 or ev.in_place:  # found at rest: its weight is in already
                return self._revise(v, *found) + self._due()
            # Carried in, its product may be a change of its own that the scale has not started
            # to report yet: the track waits in the pool, where a change starting within
            # revise_wait_s of its entry claims it, and revises the add only if none does.
            wait = min(v.deadline_ns, ev.t_ns + int(self.config.revise_wait_s * _NS))
            v = dataclasses.replace(v, deadline_ns=max(wait, self.now_ns), may_revise=True)
            self.stats["revisions_waiting"] += 1
        self._pool.append(v)
        return self._due()

    def _revision_of(self, v: _Vision) -> tuple[_Episode, str, Counter, str, float] | None:
        """The first committed add the entering track ``v`` would revise, the guessed SKU, the
        counter it is booked under, and the SKU (with its look's probability) it becomes
        (:meth:`_guess_for`); None when there is none."""
        for e in self._episodes:
            if e.committed and e.sign > 0:
                found = self._guess_for(e, v)
                if found is not None:
                    return (e, *found)
        return None

    def on_weight(self, event: Any) -> list[Event]:
        """One weight change: a :class:`caper_edge.scale.WeightEvent` or a :class:`WeightChange`."""
        w = weight_change(event)
        self._advance(w.t_decided_ns)
        self.stats[f"weight_{w.kind}"] += 1
        if self.mode == "vision_only":
            return self._due()
        if w.t_start_ns in self._cancelled_starts:
            return self._due()  # a change already cancelled against an opposite one
        ep = next((e for e in self._episodes if e.weight.t_start_ns == w.t_start_ns and not e.committed), None)
        if w.kind == "cancelled":
            if ep is not None:
                self._episodes.remove(ep)
                self._pool.extend(ep.vision)
            return self._due()
        if ep is None:
            self._serial += 1
            ep = _Episode(self._serial, w, 1 if w.delta_g > 0 else -1)
            self._episodes.append(ep)
        elif ep.settled:
            return self._due()  # a provisional after the settled change: stale
        ep.weight = w
        ep.sign = 1 if w.delta_g > 0 else -1
        if w.kind == "settled":
            ep.settled_at_ns = w.t_decided_ns
        if self.mode != "weight_only":
            self._claim(ep)
        return self._decide(ep) + self._due()

    def _accepts(self, ep: _Episode, ev: VisionEvent) -> bool:
        """An open episode takes a transition inside its pairing window; a rise no track carried
        in takes a track *found in place* until its unseen hold ends (the hand may hide a product
        until it leaves, e.g. after taking another one out). A track carried in that late is the
        next product's."""
        if ep.holds(ev.t_ns, self.config):
            return True
        if ep.sign < 0 or not ev.in_place or any(not v.ev.in_place for v in ep.vision):
            return False
        return ep.holds(ev.t_ns, self.config, self.config.unseen_hold_s)

    def _is_flicker(self, ev: VisionEvent, cands: Candidates) -> bool:
        """Handle a transition that repeats or undoes one still waiting. Returns True when ``ev``
        needs no further handling:

        * the same track entering again while its first entry waits: keep the first, refresh
          its candidates;
        * a track leaving while its entry waits unpaired in the pool: it came and went without
          touching the scale, so neither is an item event (no unconfirmed_item either);
        * a track leaving while its entry belongs to an open episode: the hand shadowed it.
        """
        tid = ev.track_id
        waiting = [v for v in self._pool if v.ev.track_id == tid and v.ev.kind == ENTERED]
        in_episode = [v for e in self._episodes if not e.committed for v in e.vision
                      if v.ev.track_id == tid and v.ev.kind == ENTERED]
        if ev.kind == ENTERED and (waiting or in_episode):
            for v in waiting + in_episode:
                v.candidates = cands or v.candidates
            self.stats["vision_repeat_entry"] += 1
            return True
        if ev.kind == LEFT and waiting:
            for v in waiting:
                self._pool.remove(v)
            self.stats["vision_came_and_went"] += 1
            return True
        if ev.kind == LEFT and in_episode:
            self.stats["vision_flicker_left"] += 1
            return True
        return False

    def _continue(self, ev: VisionEvent, cands: Candidates) -> list[Event] | None:
        """An in-place entry that continues a carried track whose entry is still undecided (see
        :class:`VisionEvent` ``continues``): one product under two tracks. The carried entry's
        look becomes the joint look of both (what the hand hid or blurred, the resting product
        shows), the new track is not explained on its own, and it joins the booked tracks with
        the carried one. None when that entry is no longer undecided (then ``ev`` is an ordinary
        in-place entry)."""
        c = ev.continues
        mine = [v for v in self._pending_vision() if v.ev.track_id == c and v.ev.kind == ENTERED and not v.ev.in_place]
        if not mine:
            return None
        for v in mine:
            v.candidates = self._joint_look(v.candidates, cands)
        self._continued[c] = ev.track_id
        self.stats["vision_continued"] += 1
        out: list[Event] = []
        for ep in [e for e in self._episodes if not e.committed and any(v in mine for v in e.vision)]:
            out += self._decide(ep)
        return out

    def _joint_look(self, a: Candidates, b: Candidates) -> Candidates:
        """Two independent looks at one product: the product of their distributions (each with
        the vision floor, so a SKU one look missed is not ruled out), renormalised, as
        candidates (as many as the longer list)."""
        if not a or not b:
            return a or b
        da, db = self._vision_dist(a), self._vision_dist(b)
        joint = {s: q * db[s] for s, q in da.items()}
        total = sum(joint.values())
        if total <= 0.0:
            return a
        top = sorted(joint.items(), key=lambda sq: (-sq[1], sq[0]))[: max(len(a), len(b))]
        return tuple((s, q / total) for s, q in top)

    def pending_carried_ids(self) -> set[int]:
        """Tracks carried in whose entry is still undecided (candidates for a continuation)."""
        return {v.ev.track_id for v in self._pending_vision() if v.ev.kind == ENTERED and not v.ev.in_place}

    def update_candidates(self, track_id: int, candidates: Candidates,
                          floor_uv: tuple[float, float] | None = None) -> list[Event]:
        """A sharper SKU posterior (and the current floor position) of a track whose transition
        is still undecided (the replay loop passes them while the track is in
        :meth:`pending_track_ids`): where a product came to rest is what the centre of pressure
        is compared with, not where it crossed the rim."""
        cands = self._known(candidates)
        touched = []
        if floor_uv is not None:
            pos = (round(floor_uv[0], 2), round(floor_uv[1], 2))
            if self._track_floor.get(track_id) != pos:
                self._track_floor[track_id] = pos
                touched = [ep for ep in self._episodes if not ep.committed and any(v.ev.track_id == track_id for v in ep.vision)]
        # In-place entries keep the look they were seen with: the track's long SKU memory is what
        # misleads when a new unit inherits an old track.
        for v in self._pool:
            if v.ev.track_id == track_id and not v.ev.in_place:
                v.candidates = cands
        for ep in self._episodes:
            mine = [v for v in ep.vision if v.ev.track_id == track_id and not v.ev.in_place] if not ep.committed else []
            for v in mine:
                if v.candidates != cands:
                    v.candidates = cands
                    if ep not in touched:
                        touched.append(ep)
        out = []
        for ep in touched:
            out += self._decide(ep)
        return out

    def set_entering(self, track_ids: Iterable[int]) -> None:
        """The item tracks that have crossed into the basket but whose entry the tracker has not
        decided yet (its zone dwell): an add about to be committed -- confident, or ambiguous at
        ``decision_timeout_s`` -- waits up to ``entering_hold_s`` after the weight settled for
        them, since one may be a second product put down with the first."""
        self._entering = frozenset(int(t) for t in track_ids)

    def set_census(self, t_ns: int, counts: dict[str, int], groups: dict[str, int] | None = None,
                   looks: dict[int, Candidates] | None = None) -> None:
        """This frame's census: the resting products inside the basket seen confidently, per SKU
        (the replay loop counts them). Fusion keeps the surplus over the basket for the last
        ``census_min_s``: an add no track carried in may be the SKU seen more often than booked
        (``census_units``). ``groups`` (``census_groups``): the resting products seen confidently
        only as a look-alike group, per group named by :meth:`group_key`; ``looks``
        (``census_resting_looks``): every resting product's track inside the basket and its
        current look. The census audit uses both. Ignored in the ablation modes."""
        if not self.config.census_units or self.mode != "fusion":
            return
        t = int(t_ns)
        horizon = t - int(self.config.census_min_s * _NS)

        def keep(window: deque, frame: dict) -> None:  # this frame, and those of the last census_min_s
            window.append((t, frame))
            while window and window[0][0] < horizon:
                window.popleft()

        keep(self._census, {sku: n for sku, n in counts.items() if n > 0})
        if self.config.census_groups:
            keep(self._census_groups, {g: n for g, n in (groups or {}).items() if n > 0})
        if self.config.census_resting_looks:
            keep(self._resting_looks, dict(looks or {}))

    def group_key(self, sku: str) -> str | None:
        """The name of ``sku``'s look-alike group in the census: its first member (sorted);
        None when it has no look-alike."""
        alike = self.catalog.lookalikes(sku)
        return min((sku, *alike)) if alike else None

    def _group_members(self, key: str) -> tuple[str, ...]:
        return tuple(sorted((key, *self.catalog.lookalikes(key))))

    def set_hands(self, t_ns: int, n: int) -> None:
        """This frame's count of hands in view (the replay loop counts the tracker's confirmed
        hand tracks). A change that more hands attended than tracks explain takes
        ``spare_hand_prior`` for a unit no track carried. Ignored in the ablation modes and
        when that prior is 0."""
        if self.config.spare_hand_prior <= 0.0 or self.mode != "fusion":
            return
        t_ns, n = int(t_ns), int(n)
        if not self._hands or self._hands[-1][1] != n:
            self._hands.append((t_ns, n))
        while len(self._hands) > 1 and self._hands[1][0] < t_ns - self._hands_keep_ns:
            self._hands.popleft()  # the first kept entry stays: its count holds until the next

    def _hands_during(self, w: WeightChange) -> int:
        """The most hands in view at once from ``hand_lead_s`` before ``w`` began until it settled."""
        if not self._hands:
            return 0
        t0, t1 = w.t_start_ns - int(self.config.hand_lead_s * _NS), w.t_settled_ns
        most = 0
        for t, n in reversed(self._hands):  # newest first: the windows asked about are recent
            if t <= t1:
                most = max(most, n)
                if t <= t0:
                    break  # the count in force when the window opened
        return most

    def add_glimpses(self, t_ns: int, looks: Sequence[tuple[str, float] | tuple[str, float, int]
                                                      | tuple[str, float, int, tuple[float, ...]]]) -> None:
        """This frame's glimpses: the top SKU and its probability of each item detection that no
        confirmed track took (the replay loop lists those whose look reaches
        ``glimpse_min_prob``), and optionally a third element saying what the probability is
        (``fusion.inputs``): ``GLIMPSE_SKU`` (0, the default) the top SKU's own,
        ``GLIMPSE_GROUP`` (1) its look-alike group's together (``glimpse_groups``: the SKU alone
        fell short), ``GLIMPSE_WEAK`` (2) the larger of the two, below ``glimpse_min_prob`` but at
        least ``glimpse_weak_min_prob``; and optionally a fourth, the detection's box (x0, y0,
        x1, y1; ``glimpse_weak_fresh_iou``, ``glimpse_stale_iou``). An add no track accounts for
        may be the SKU glimpsed around it (``glimpse_units``). Ignored in the ablation modes."""
        if not self.config.glimpse_units or self.mode != "fusion":
            return
        for look in looks:
            kind = look[2] if len(look) > 2 else GLIMPSE_SKU
            if kind not in (GLIMPSE_SKU, GLIMPSE_GROUP, GLIMPSE_WEAK):
                raise ValueError(f"add_glimpses: kind = {kind!r} for {look[0]!r}, expected 0 (SKU), 1 (group) or 2 (weak)")
            box = tuple(float(x) for x in look[3]) if len(look) > 3 and look[3] is not None else None
            if box is not None and not (len(box) == 4 and box[0] <= box[2] and box[1] <= box[3]):
                raise ValueError(f"add_glimpses: box = {look[3]!r} for {look[0]!r}, expected (x0, y0, x1, y1) with x0 <= x1, y0 <= y1")
            self._glimpses.append((int(t_ns), look[0], float(look[1]), int(kind), box))
        # Kept as long as a track's transition waits for its weight change (a change is reported
        # once it settles), and back to pair_before_s before every undecided change's start.
        # With glimpse_stale_iou, pair_before_s longer: the glimpses before an unseen rise's own.
        cfg = self.config
        extra = cfg.pair_before_s if cfg.glimpse_stale_iou > 0 else 0.0
        starts = [ep.weight.t_start_ns - int((cfg.pair_before_s + extra) * _NS) for ep in self._episodes if not ep.committed]
        horizon = min([int(t_ns) - int((max(cfg.weight_wait_s, cfg.pair_before_s) + extra) * _NS), *starts])
        while self._glimpses and self._glimpses[0][0] < horizon:
            self._glimpses.popleft()

    def booked_track_ids(self) -> set[int]:
        """Tracks whose items are in the basket (the replay loop watches them vanish)."""
        return set(self._tracks_in)

    def audit_track_ids(self) -> set[int]:
        """Booked tracks whose add may still be revised by their resting look (``audit_window_s``):
        the replay loop passes their posteriors to :meth:`audit_look` while they rest inside."""
        if not self._audits:
            return set()
        limit = int(self.config.audit_window_s * _NS)
        for tid in [t for t, a in self._audits.items() if self.now_ns - a.t_commit_ns > limit]:
            del self._audits[tid]
        return set(self._audits)

    def audit_look(self, track_id: int, t_ns: int, candidates: Candidates, floor_uv: tuple[float, float] | None = None,
                   *, at_rest: bool = True) -> list[Event]:
        """The SKU posterior of a booked track seen inside the basket at ``t_ns`` (at rest, or
        moving: ``at_rest`` false) within ``audit_window_s`` of its add.

        A track carried in is often decided on a blurred look: in a hand, half over the rim, two
        units under one box. Once the product rests its look is sharper. When it steadily gives
        each SKU the add booked at most ``1 - audit_min_prob`` and another SKU at least
        ``audit_min_prob`` -- for ``audit_min_s`` at rest, within ``reentry_max_move`` of where
        it lay when that began, with no weight change in progress -- the add's weight change is
        explained again with this look; when that explanation names other units with at least
        ``audit_min_posterior``, none of a new SKU the basket already holds, the units it drops
        are taken back and those it adds booked (``item_removed`` + ``item_added`` at the add's
        time, marked ``revises``). Once per add, whichever of its tracks revises it; a track
        booked for a later add stands for that product then, and audits that add instead."""
        a = self._audits.get(track_id)
        if a is None or self.mode != "fusion":
            return []
        self._advance(int(t_ns))
        cfg = self.config
        if (self.now_ns - a.t_commit_ns > int(cfg.audit_window_s * _NS) or track_id not in self._tracks_in
                or any(self.basket.qty(sku) < n for sku, n in a.ep.units.items())):
            del self._audits[track_id]
            return []
        cands = tuple(sorted(self._known(candidates), key=lambda c: -c[1]))
        top, p_top = cands[0] if cands else (None, 0.0)
        booked = +a.ep.units  # any of the add's SKUs is no contrary look
        probs = dict(cands)
        contrary = (at_rest and top is not None and top not in booked and p_top >= cfg.audit_min_prob
                    and all(probs.get(sku, 0.0) <= 1.0 - cfg.audit_min_prob for sku in booked))
        if not contrary:
            a.since_ns, a.anchor = None, None
            return []
        if a.since_ns is None:
            a.since_ns, a.anchor = int(t_ns), floor_uv
            return []
        if a.anchor is not None and floor_uv is not None and math.dist(a.anchor, floor_uv) > cfg.reentry_max_move:
            a.since_ns, a.anchor = int(t_ns), floor_uv  # the track moved: another product, perhaps
            return []
        if int(t_ns) - a.since_ns < int(cfg.audit_min_s * _NS):
            return []
        if any(not e.committed for e in self._episodes):
            return []  # a weight change is in progress: wait for it
        return self._audit_revise(a, cands)

    def audit_census(self) -> list[Event]:
        """Weight guesses of adds (units no track carried, booked below ``commit_posterior``;
        with ``census_audit_weak``, any unit booked below it) within ``audit_window_s``: when the
        census steadily shows a product more than the basket holds, the add's change is
        explained again as if a track had carried it; when that explanation takes only such
        units back and books the product with at least ``audit_min_posterior``, it is revised.
        With ``census_groups``, products seen steadily only as a look-alike group count too, and
        after each product alone fails, all the surplus products are tried together; with
        ``census_resting_looks`` the add's tracks are weighed by their steady resting looks;
        with ``census_audit_short`` units nothing at rest looks like may go back too
        (:meth:`_revisable`). The newest add is tried first."""
        cfg = self.config
        if not self._census_audits or self.mode != "fusion":
            return []
        limit = int(cfg.audit_window_s * _NS)
        self._census_audits = [(ep, t) for ep, t in self._census_audits
                               if self.now_ns - t <= limit and self._auditable(ep)]
        if not self._census_audits or any(not e.committed for e in self._episodes):
            return []
        t_from = self.now_ns - int(cfg.census_min_s * _NS)
        seen, n_frames = self._census_seen(t_from)
        if n_frames < 2:
            return []
        steady = sorted(sku for sku, k in seen.items() if k / n_frames >= cfg.census_min_share)
        groups: list[str] = []
        if cfg.census_groups:
            g_seen, g_frames = self._census_group_seen(t_from)
            if g_frames >= 2:
                groups = sorted(g for g, k in g_seen.items() if k / g_frames >= cfg.census_min_share
                                and not any(m in steady for m in self._group_members(g)))
        if not steady and not groups:
            return []  # no surplus: nothing to weigh an add with
        resting = self._steady_looks(t_from)
        short = self._census_short(t_from) if cfg.census_audit_short else frozenset()
        # A product on its way in (a track crossing, or one waiting for its weight) is its own
        # add's surplus, and the track it lands on or covers no evidence against an older add.
        on_way = bool(self._entering or self._pending_vision())
        for ep, t_commit in reversed(self._census_audits):  # newest first: a surplus is most likely the last add's
            if t_from < ep.weight.t_settled_ns:
                continue
            revisable = set(self._revisable(ep, short, {} if on_way else resting))
            if not revisable:
                continue
            booked = +ep.units
            looks = [((sku,), ((sku, 0.95),)) for sku in steady if sku not in revisable]
            for g in groups:
                members = self._group_members(g)
                if not any(m in revisable for m in members):
                    looks.append((members, tuple((m, 0.95 / len(members)) for m in members)))
            trials = [[lk] for lk in looks]  # each product alone (groups only with census_groups) ...
            if cfg.census_groups and len(looks) > 1:
                trials.append(looks)  # ... then all of them together
            vision = [dataclasses.replace(v, candidates=resting[v.ev.track_id]) if v.ev.track_id in resting else v
                      for v in ep.vision]  # census_resting_looks: the tracks as they rest now
            for trial in trials:
                pseudo = [_Vision(VisionEvent(ENTERED, -1 - ep.serial - 1000 * i, ep.weight.t_start_ns,
                                              ep.weight.t_start_ns, look), 0, look)
                          for i, (_members, look) in enumerate(trial)]
                exps, tracks = self._explain_with(ep, vision + pseudo)
                best = exps[0]
                counts = Counter(dict(best.counts))
                if best.outlier or best.prob < cfg.audit_min_posterior or counts == booked:
                    continue
                if not all(any(counts[m] for m in members) for members, _look in trial):
                    continue
                gone, new = booked - counts, counts - booked
                shown = {m for members, _look in trial for m in members}
                if not set(gone) <= revisable or any(k in self.basket for k in new if k not in shown):
                    continue
                sku = next(m for m in trial[0][0] if counts[m])
                census = {"sku": sku, "share": round(seen[sku] / n_frames, 3) if sku in seen else None,
                          "frames": n_frames}
                if len(trial) > 1 or len(trial[0][0]) > 1:
                    census["shown"] = ["|".join(members) for members, _look in trial]
                removed_from = {k: self._carrier_of(ep, k) for k in gone}
                carriers = {k: v.ev.track_id for v, (k, _n) in zip(tracks, best.tracks)
                            if k is not None and v.ev.track_id >= 0}  # not the census's pseudo-tracks
                out = self._book_revision(ep, exps, counts, gone, new, {"census": census},
                                          {k: t for k, t in removed_from.items() if t is not None}, carriers)
                for k, n in gone.items():
                    ep.untracked[k] = max(0, ep.untracked[k] - n)
                self.stats["census_revisions"] += 1
                return out
        return []

    def _auditable(self, ep: _Episode) -> bool:
        """Whether the census audit still watches the add ``ep``: every add with
        ``census_audit_short``; else one with units it may take back."""
        cfg = self.config
        if cfg.census_audit_short:
            return True
        return bool(self._revisable(ep)) if cfg.census_audit_weak else sum(ep.untracked.values()) > 0

    def _look_key(self, sku: str) -> str:
        return self.group_key(sku) or sku

    def _revisable(self, ep: _Episode, short: frozenset[str] = frozenset(),
                   resting: dict[int, Candidates] | None = None) -> list[str]:
        """What the census audit may take back from the add ``ep``: its weight guesses, with
        ``census_audit_weak`` every SKU it booked below ``commit_posterior``, and with
        ``census_audit_short`` every SKU it booked that is in ``short`` -- one booked at or above
        ``commit_posterior`` only when the track it was booked on rests looking like another
        product (its look in ``resting``, :meth:`_steady_looks`) (sorted)."""
        cfg = self.config
        if not cfg.census_audit_weak:
            out = set(self._weight_guesses(ep))
        else:
            out = {sku for sku, n in ep.units.items() if n > 0 and ep.unit_conf.get(sku, 1.0) < cfg.commit_posterior}
        for sku, n in ep.units.items():
            if n <= 0 or sku not in short or sku in out:
                continue
            carrier = self._carrier_of(ep, sku)
            look = (resting or {}).get(carrier) if carrier is not None else None
            if ep.unit_conf.get(sku, 1.0) < cfg.commit_posterior or (
                    look is not None and self._look_key(look[0][0]) != self._look_key(sku)):
                out.add(sku)
        return sorted(out)

    def _steady_looks(self, t_from: int) -> dict[int, Candidates]:
        """The tracks that rested inside the basket in every census frame since ``t_from`` (at
        least two) looking like one product -- the same top SKU, or the same look-alike group
        -- and their latest look (``census_resting_looks``; empty without it)."""
        frames = [looks for t, looks in self._resting_looks if t >= t_from]
        if len(frames) < 2:
            return {}
        out = {}
        for tid, look in frames[-1].items():
            seen = [f.get(tid) for f in frames]
            if all(seen) and len({self._look_key(lk[0][0]) for lk in seen}) == 1:
                out[tid] = tuple(look)
        return out

    def _census_short(self, t_from: int) -> frozenset[str]:
        """The basket's SKUs the census saw fewer of than the basket holds in every frame since
        ``t_from`` (at least two), each resting product counted for its SKU when seen
        confidently and, with ``census_groups``, for every member of the group it was seen as:
        booked units nothing at rest looks like."""
        frames = [(t, seen) for t, seen in self._census if t >= t_from]
        if len(frames) < 2:
            return frozenset()
        groups = dict(self._census_groups)
        short = set()
        for line in self.basket:
            key = self.group_key(line.sku)
            if all(seen.get(line.sku, 0) + groups.get(t, {}).get(key, 0) < line.qty for t, seen in frames):
                short.add(line.sku)
        return frozenset(short)

    def _carrier_of(self, ep: _Episode, sku: str) -> int | None:
        """The track of the add ``ep`` that a basket unit of ``sku`` was booked on, if any."""
        line = self.basket.line(sku)
        if line is None:
            return None
        tracks = {v.ev.track_id for v in ep.vision}
        return next((u.track_id for u in line.units if u.track_id in tracks), None)

    def _audit_revise(self, a: _Audit, cands: Candidates) -> list[Event]:
        ep = a.ep
        self._end_audits(ep, census=False)  # once per add, whichever of its tracks asked
        self.stats["audits"] += 1
        # Explain the change again with this look, on the basket the add found.
        exps, tracks = self._explain_with(
            ep, [dataclasses.replace(v, candidates=cands) if v.ev.track_id == a.track_id else v for v in ep.vision])
        best = exps[0]
        counts = Counter(dict(best.counts))
        booked = +ep.units
        if best.outlier or best.prob < self.config.audit_min_posterior or counts == booked:
            return []
        gone, new = booked - counts, counts - booked
        if any(sku in self.basket and sku not in booked for sku in new):
            # A look of a product already in the basket may be that product: the track slid onto
            # it, or it lies under the booked one.
            self.stats["audits_in_basket"] += 1
            return []
        carriers = {sku: v.ev.track_id for v, (sku, _n) in zip(tracks, best.tracks) if sku is not None}
        look = [a.track_id] + [[s, round(p, 4)] for s, p in cands[:3]]
        out = self._book_revision(ep, exps, counts, gone, new, {"audit": look}, a.carriers, carriers)
        self.stats["audit_revisions"] += 1
        return out

    def _explain_with(self, ep: _Episode, vision: list[_Vision]) -> tuple[list[Explanation], list[_Vision]]:
        """The explanations of a committed episode's change had its tracks looked like
        ``vision`` (an audit's second look), and the tracks they label; the episode is left as it
        was. Cached by the same inputs as :meth:`_explain`, so an audit that keeps failing
        (the census stays steady, the explanation unsure) is not searched again every frame."""
        key = self._inputs_key(ep, vision, True)
        hit = ep.second_looks.get(key)
        if hit is None:
            saved, ep.vision = ep.vision, vision
            try:
                hit = (self._search(ep, True), self._strongest(ep))
            finally:
                ep.vision = saved
            ep.second_looks[key] = hit
        return hit

    def _book_revision(self, ep: _Episode, exps: list[Explanation], counts: Counter, gone: Counter, new: Counter,
                       detail: dict, removed_from: dict, added_to: dict) -> list[Event]:
        """An audit's revision of the add ``ep``: ``item_removed`` of the units ``gone`` and
        ``item_added`` of the units ``new`` (the new best explanation ``counts`` against what was
        booked), at the add's time, with no weight delta (the add carried it), on the tracks
        ``removed_from`` / ``added_to`` name per SKU; ``detail`` joins the evidence after
        ``revises``. Ends the add's audits."""
        w = ep.weight
        evidence = self._evidence(ep, exps)
        evidence["revises"] = "+".join(f"{n}x{s}" for s, n in sorted(gone.items()))
        evidence.update(detail)
        booked_tracks = self._tracks_in & {v.ev.track_id for v in ep.vision}
        out = []
        for sku, n in sorted(gone.items()):
            out.append(self._apply(-1, sku, n, ep.unit_conf.get(sku, exps[0].prob), None, removed_from.get(sku),
                                   w.t_settled_ns, evidence))
            ep.units[sku] -= n
        for sku, n in sorted(new.items()):
            conf = _marginal(exps, sku, counts[sku])
            out.append(self._apply(1, sku, n, conf, None, added_to.get(sku), w.t_settled_ns, evidence))
            ep.units[sku] += n
            ep.unit_conf[sku] = conf
        self._tracks_in |= booked_tracks  # the episode's tracks still hold products of the basket
        self._end_audits(ep)
        return out

    def _weight_guesses(self, ep: _Episode) -> list[str]:
        """The SKUs of the add ``ep`` still booked on the weight alone: units no track carried,
        committed below ``commit_posterior`` (sorted)."""
        return sorted(sku for sku, n in ep.untracked.items()
                      if n > 0 and ep.unit_conf.get(sku, 1.0) < self.config.commit_posterior)

    def _end_audits(self, ep: _Episode, census: bool = True) -> None:
        """Forget the resting audits of the add ``ep`` (and, with ``census``, its census audit)."""
        for tid in [t for t, other in self._audits.items() if other.ep is ep]:
            del self._audits[tid]
        if census:
            self._census_audits = [(e, t) for e, t in self._census_audits if e is not ep]

    def note_floor(self, track_id: int, t_ns: int, floor_uv: tuple[float, float]) -> None:
        """The floor position of a booked track seen at ``t_ns`` (the replay loop passes every
        booked track matched in a frame); others are ignored."""
        if track_id not in self._tracks_in:
            return
        pos = (round(floor_uv[0], 2), round(floor_uv[1], 2))
        hist = self._floor_history.get(track_id)
        if hist is None:
            hist = self._floor_history[track_id] = deque(maxlen=_FLOOR_HISTORY)
        if not hist or hist[-1][1] != pos:
            hist.append((t_ns, pos))

    def _floor_at(self, track_id: int, t_ns: int) -> tuple[float, float] | None:
        """Where a booked track was at ``t_ns``: its last noted position at or before it (the
        oldest one kept if all are later); None if none was noted."""
        hist = self._floor_history.get(track_id)
        if not hist:
            return None
        return next((pos for t, pos in reversed(hist) if t <= t_ns), hist[0][1])

    def pending_track_ids(self) -> set[int]:
        return {v.ev.track_id for v in self._pending_vision()}

    def tick(self, t_ns: int) -> list[Event]:
        """Advance the stream clock to ``t_ns``; returns the decisions that timed out."""
        self._advance(int(t_ns))
        return self._due()

    def flush(self) -> list[Event]:
        """End of stream: decide everything still waiting, as if every timeout had passed."""
        horizon = max([v.deadline_ns for v in self._pool] + [self.now_ns]) + int(
            (self.config.decision_timeout_s + self.config.unseen_hold_s + self.config.weight_wait_s) * _NS)
        out = []
        for ep in [e for e in self._episodes if not e.committed]:
            if not ep.settled:  # only a provisional change: take it as the settled one
                ep.settled_at_ns = ep.weight.t_decided_ns
        self.now_ns = horizon
        out += self._due()
        return out

    def reset(self) -> int:
        """Forget everything pending and empty the basket; returns the units cleared."""
        self._pool.clear()
        self._episodes.clear()
        self._floor_history.clear()
        self._census.clear()  # counts of the products the reset took away
        self._census_groups.clear()
        self._resting_looks.clear()
        self._glimpses.clear()
        self._continued.clear()
        self._audits.clear()
        self._census_audits.clear()
        self._rereadable.clear()  # their units are gone with the basket
        self._alarmed_rises.clear()
        return self.basket.clear()

    # =========================================================================================
    # Scheduling
    # =========================================================================================

    def _advance(self, t_ns: int) -> None:
        if t_ns > self.now_ns:
            self.now_ns = t_ns

    def _due(self) -> list[Event]:
        out: list[Event] = []
        for ep in [e for e in self._episodes if not e.committed and e.settled]:
            if ep in self._episodes:  # a cancellation may have removed it meanwhile
                out += self._decide(ep)
        for v in sorted((v for v in self._pool if v.deadline_ns <= self.now_ns), key=lambda v: (v.deadline_ns, v.ev.track_id)):
            self._pool.remove(v)
            out += self._expire_vision(v)
        cfg = self.config
        keep_s = max(cfg.remove_pair_after_s, cfg.absorb_window_s) + cfg.pair_before_s
        horizon = self.now_ns - int(keep_s * _NS)
        self._episodes = [e for e in self._episodes if not (e.committed and e.weight.t_settled_ns < horizon)]
        recent = self.now_ns - int(max(cfg.swap_window_s, cfg.putback_window_s) * _NS) - int(keep_s * _NS)
        self._recent_adds = [a for a in self._recent_adds if a[0] >= recent]
        self._recent_removals = [r for r in self._recent_removals if r[0] >= recent]
        self._unseen_removals = [r for r in self._unseen_removals if r[0] >= recent]
        since = self.now_ns - int(cfg.reread_window_s * _NS)
        while self._rereadable and self._rereadable[0][1] < since:  # appended in commit order
            self._rereadable.popleft()
        since = self.now_ns - int(cfg.alarm_return_window_s * _NS)
        while self._alarmed_rises and self._alarmed_rises[0][0] < since:  # appended about in settle order
            self._alarmed_rises.popleft()  # (one out of order waits for those before it; matching checks the window)
        if self._continued:  # a carried entry decided without a booking (or expired) keeps no link
            carried = self.pending_carried_ids()
            self._continued = {c: p for c, p in self._continued.items() if c in carried}
        if len(self._track_floor) > 256:
            pending = self.pending_track_ids()
            self._track_floor = {k: v for k, v in self._track_floor.items() if k in pending}
        if len(self._floor_history) > 2 * max(len(self._tracks_in), 64):
            self._floor_history = {k: v for k, v in self._floor_history.items() if k in self._tracks_in}
        return out

    def _claim(self, ep: _Episode) -> None:
        kind = ENTERED if ep.sign > 0 else LEFT
        mine = [v for v in self._pool if v.ev.kind == kind and ep.holds(v.ev.t_ns, self.config)]
        for v in mine:
            self._pool.remove(v)
        ep.vision.extend(mine)
        ep.vision.sort(key=lambda v: (v.ev.t_ns, v.ev.track_id))

    def _absorbs(self, ep: _Episode, v: _Vision) -> bool:
        """A late transition of a unit this committed episode booked without a track (a second
        product beside the seen one): the track is that unit's, not a new item."""
        if not ep.holds(v.ev.t_ns, self.config, self.config.absorb_window_s):
            return False
        for sku, p in v.candidates:
            if ep.untracked[sku] > 0 and p >= self.config.absorb_min_prob:
                ep.untracked[sku] -= 1
                return True
        return False

    def _guess_for(self, ep: _Episode, v: _Vision) -> tuple[str, Counter, str, float] | None:
        """The unit of the committed add ``ep`` booked on the weight alone that the entering
        track ``v`` would revise (:meth:`_revise`), with the counter it is booked under
        (``ep.untracked`` or ``ep.counted``) and what it becomes: the track's top SKU, when its
        look gives it ``mismatch_vision_min``; or (``revise_by_group``), when the look gives that
        to the top SKU's look-alike group together, the one member of the group that weighs
        like the guess. Never a SKU already in the basket. None when there is none."""
        cfg = self.config
        if not cfg.revise_guesses or not v.candidates or not ep.holds(v.ev.t_ns, cfg, cfg.absorb_window_s):
            return None
        top, p_top = v.candidates[0]
        if p_top >= cfg.mismatch_vision_min:
            news = [(top, p_top)]
        elif cfg.revise_by_group:
            group = {top, *self.catalog.lookalikes(top)}
            mass = sum(p for s, p in v.candidates if s in group)
            if mass < cfg.mismatch_vision_min:
                return None
            news = [(s, mass) for s, _ in v.candidates if s in group]  # the group's look; the weight picks the member
        else:
            return None
        news = [(s, p) for s, p in news if s not in self.basket]  # candidates are catalogue SKUs
        guesses = [(sku, ep.untracked) for sku in self._weight_guesses(ep)]
        if v.ev.track_id not in self._tracks_in:
            guesses += [(sku, ep.counted) for sku in sorted(ep.counted)]
        for sku, kind in guesses:
            if kind[sku] <= 0 or self.basket.qty(sku) < 1:
                continue
            old = self.catalog[sku]
            fits = [(s, p) for s, p in news if self._weigh_alike(self.catalog[s], old)]
            if len(fits) == 1:
                return sku, kind, *fits[0]
        return None

    def _weigh_alike(self, a: Product, b: Product) -> bool:
        """Within ``z_prune / 2`` combined standard deviations of each other."""
        cfg = self.config
        spread = math.sqrt(a.weight_std_g ** 2 + b.weight_std_g ** 2 + cfg.scale_noise_g ** 2)
        return abs(a.weight_g - b.weight_g) <= cfg.z_prune * spread / 2

    def _revise(self, v: _Vision, ep: _Episode, sku: str, kind: Counter, top: str, p_top: float) -> list[Event]:
        """A late entering track that confidently looks like a weigh-alike of a unit this
        committed add booked on the weight alone, of a SKU not in the basket at all: that unit
        was this product. A unit booked on the weight alone is one no track carried (and its
        confidence was below ``commit_posterior``), or -- for a track not yet booked -- a second
        unit of a SKU a track was seen as (counted on that track or added as an extra unit of
        it): two lentils booked on one track of lentils, a sugar of the same weight found at
        rest beside them. The second unit came from the weight and the prior of two units in
        one hand, which a product seen there overturns, however confident the add was.
        The guess (``sku``, booked under the add's counter ``kind``: :meth:`_revision_of`) is
        taken back and the product seen (``top``, its look ``p_top``) booked in its place, as an
        ``item_removed`` + ``item_added`` pair at the add's time, both marked ``revises`` in
        their evidence. Off with ``revise_guesses`` false."""
        kind[sku] -= 1
        other = ep.untracked if kind is ep.counted else ep.counted
        if other[sku] > 0:
            other[sku] -= 1  # an extra unit of a carried SKU is in both: it is gone from both
        ep.units[sku] -= 1
        ep.units[top] += 1
        w = ep.weight
        evidence = {"revises": sku, "by_track": v.ev.track_id, "look": [[s, round(p, 4)] for s, p in v.candidates[:3]]}
        self.stats["guesses_revised"] += 1
        return [self._apply(-1, sku, 1, ep.unit_conf.get(sku, 0.5), None, None, w.t_settled_ns, evidence),
                self._apply(1, top, 1, p_top, None, v.ev.track_id, w.t_settled_ns, evidence)]

    def _reread(self, ep: _Episode, use_vision: bool = True) -> list[Event]:
        """A removal the basket explains poorly re-reads a recent add (``reread_window_s``).

        The fall ``ep`` is about to be committed; its best explanation is the outlier or lies more
        than ``reread_min_z`` standard deviations from it. For each add committed within the
        window whose booked units are all still in the basket, every other explanation it had
        (posterior at least ``reread_min_prob`` then) is a reading of it: the fall is explained
        again on the basket that reading would have left. The readings of one add are weighed
        together -- the add's posterior of each times the fall's evidence (its explanations'
        total likelihood) on its basket. When the readings other than the booked one reach
        ``reread_min_posterior`` together (the add as booked is that unlikely), the most
        probable of them revises it: ``item_removed`` + ``item_added`` at the add's time,
        marked ``revises`` (with ``reread_by``: the fall's delta), as the audits book theirs. At
        most one add per fall; the caller explains the fall again on the corrected basket. A rise
        re-reads nothing."""
        cfg = self.config
        if ep.sign > 0 or cfg.reread_window_s <= 0 or self.mode == "vision_only" or not self._rereadable:
            return []
        exps = self._explain(ep, use_vision)
        best = exps[0]
        if not best.outlier and abs(best.z) <= cfg.reread_min_z:
            return []
        base = _log_evidence(exps)
        found = None  # (P(not as booked), add, its tracks, its other readings with their joint posteriors, best first)
        for add, _t in reversed(self._rereadable):
            booked = +add.units
            if not booked or any(self.basket.qty(s) < n for s, n in booked.items()):
                continue
            p_booked = sum(e.prob for e in add.readings if not e.outlier and Counter(dict(e.counts)) == booked)
            if p_booked <= 0.0:
                continue  # booked otherwise than any explanation said (a mismatch, an audit): not re-read
            without = copy.deepcopy(self.basket)  # the basket less what the add booked
            for sku, n in booked.items():
                without.remove(sku, n)
            tracks = self._strongest(add)
            joint = [(math.log(p_booked) + base, None)]
            for alt in add.readings:
                if alt.outlier or alt.prob < cfg.reread_min_prob or Counter(dict(alt.counts)) == booked:
                    continue
                log_l = self._evidence_on(ep, use_vision, without, alt, self._carriers(tracks, alt), add.weight.t_settled_ns)
                if log_l > -math.inf:
                    joint.append((math.log(alt.prob) + log_l, alt))
            if len(joint) < 2:
                continue
            top = max(x for x, _ in joint)
            total = sum(math.exp(x - top) for x, _ in joint)
            other = 1.0 - math.exp(joint[0][0] - top) / total  # P(the add was not what it booked)
            self.stats["rereads"] += 1
            if other >= cfg.reread_min_posterior and (found is None or other > found[0]):
                rescored = sorted((dataclasses.replace(a, prob=math.exp(x - top) / total) for x, a in joint[1:]),
                                  key=lambda e: -e.prob)
                found = (other, add, tracks, rescored)
        if found is None:
            return []
        other, add, tracks, rescored = found
        best = rescored[0]  # the most probable other reading
        booked, counts = +add.units, Counter(dict(best.counts))
        detail = {"reread_by": round(ep.weight.delta_g, 2), "reread_posterior": round(best.prob, 4),
                  "reread_booked_posterior": round(1.0 - other, 4)}
        out = self._book_revision(add, rescored, counts, booked - counts, counts - booked, detail, {},
                                  self._carriers(tracks, best))
        add.readings = []
        self.stats["reread_revisions"] += 1
        return out

    def _evidence_on(self, ep: _Episode, use_vision: bool, without: Basket, reading: Explanation,
                     carriers: dict[str, int], t_ns: int) -> float:
        """Log evidence of the fall ``ep`` on the basket an add would have left had it booked
        ``reading``: ``without`` (the basket less what it booked) plus the reading's units, on the
        tracks ``carriers`` names, booked at ``t_ns``."""
        hyp = copy.deepcopy(without)
        for sku, n in reading.counts:
            hyp.add(sku, n, confidence=reading.prob, track_id=carriers.get(sku), t_ns=t_ns)
        saved, self.basket = self.basket, hyp
        try:
            return _log_evidence(self._search(ep, use_vision))
        finally:
            self.basket = saved

    @staticmethod
    def _carriers(tracks: list[_Vision], reading: Explanation) -> dict[str, int]:
        """SKU -> the track among ``tracks`` (an add's strongest) that ``reading`` labels with it."""
        return {sku: v.ev.track_id for v, (sku, _n) in zip(tracks, reading.tracks) if sku is not None}

    # =========================================================================================
    # Decisions
    # =========================================================================================

    def _decide(self, ep: _Episode) -> list[Event]:
        if ep.committed or not ep.settled:
            return []
        cfg = self.config
        waited = self.now_ns - ep.settled_at_ns
        if self.mode != "weight_only" and not ep.vision:
            return self._decide_unseen(ep, waited)
        exps = self._explain(ep)
        best = exps[0]
        if (self.mode != "weight_only" and not best.outlier and all(sku is None for sku, _ in best.tracks)
                and not self._seen_extras(ep, best)):
            # The tracks only brought nothing (hands, resting items found again): no unit was seen.
            return self._decide_unseen(ep, waited)
        if (self._only_resighted(ep, best) and waited < (cfg.resighted_wait_s if ep.sign > 0 else cfg.unseen_removal_hold_s) * _NS
                and not self._census_confirms(ep, best)):
            return []  # only booked items seen again explain it: give the new item's own track time to arrive
        if best.prob >= cfg.commit_posterior or waited >= cfg.decision_timeout_s * _NS:
            if (ep.sign > 0 and waited < cfg.entering_hold_s * _NS
                    and self._entering - {v.ev.track_id for v in ep.vision}):
                self.stats["entering_holds"] += 1
                return []  # a track is crossing into the basket: it may be part of this change
            self.stats["timeout_commits" if exps[0].prob < cfg.commit_posterior else "confident_commits"] += 1
            # A fall no basket units explain may be an alarmed product leaving -- unless a
            # confident track shows a booked product leaving (its mismatch stands).
            if (ep.sign < 0 and best.outlier and self._alarmed_rises
                    and not any(self._can_apply(-1, v.candidates[0][0], 1) for v in self._strongest(ep) if self._confident(v))
                    and self._alarm_return(ep)):
                return []
            reread = self._reread(ep)
            if reread:
                exps = self._explain(ep)  # on the corrected basket
            return reread + self._after_commit(ep, self._commit(ep, exps))
        return []

    def _seen_extras(self, ep: _Episode, best: Explanation) -> dict[int, str]:
        """Tracks the explanation calls spurious though one of its extra units is what they
        confidently looked like as they were carried in: the unit was seen, only its track's
        floor position disagreed with the centre of pressure (the track slid onto a resting
        product as the hand put its own down). ``{track_id: sku}``; empty with
        ``seen_extra_units`` off."""
        if not self.config.seen_extra_units or ep.sign < 0 or not best.extras:
            return {}
        left = Counter(dict(best.extras))
        seen = {}
        for v, (sku, _n) in zip(self._strongest(ep), best.tracks):
            if sku is None and self._confident(v) and left[v.candidates[0][0]] > 0:
                seen[v.ev.track_id] = v.candidates[0][0]
                left[v.candidates[0][0]] -= 1
        return seen

    def _census_confirms(self, ep: _Episode, best: Explanation) -> bool:
        """A rise whose best explanation rests on re-sightings is a new unit at rest, not a booked
        one seen again, when the census (``census_units``) has counted more resting products of
        each SKU it books than the basket holds -- by at least the units it books, discounting
        products still waiting to be booked with their own tracks -- in at least
        ``census_min_share`` of the frames of the last ``census_min_s``, all of them after the
        rise settled (``census_ends_resighted_wait``)."""
        cfg = self.config
        t_from = self.now_ns - int(cfg.census_min_s * _NS)
        if ep.sign < 0 or not cfg.census_ends_resighted_wait or not best.counts or t_from < ep.weight.t_settled_ns:
            return False
        frames = self._census_frames(t_from)
        steady = sum(all(surplus[sku] >= n for sku, n in best.counts) for surplus in frames)
        if not frames or steady < cfg.census_min_share * len(frames):
            return False
        self.stats["census_ended_resighted_waits"] += 1
        return True

    def _only_resighted(self, ep: _Episode, best: Explanation) -> bool:
        """The best explanation puts units only on tracks of booked items seen again."""
        if self.mode == "weight_only" or best.outlier:
            return False
        labelled = [v for v, (sku, _) in zip(self._strongest(ep), best.tracks) if sku is not None]
        return bool(labelled) and all(self._spurious(v) == self.config.reentry_spurious_prior for v in labelled)

    def _decide_unseen(self, ep: _Episode, waited: int) -> list[Event]:
        """A change no track accounts for: hold it (a late track, a cancelling opposite change),
        then commit it as unseen. Confident entering tracks of it that brought nothing are
        unconfirmed items."""
        cfg = self.config
        if ep.sign > 0:
            # Other vision of the product (None unless fed: glimpse_units / census_units, fusion
            # mode); glimpses give the product's own track add_pair_after_s to arrive first.
            found = ((self._glimpse_unit(ep) if waited >= cfg.add_pair_after_s * _NS else None)
                     or self._census_unit(ep))
            if found is not None:
                return self._after_commit(ep, self._commit_untracked(ep, *found))
        if waited < (cfg.unseen_hold_s if ep.sign > 0 else cfg.unseen_removal_hold_s) * _NS:
            return []
        partner = self._cancelling_partner(ep)
        if partner is not None:
            if not partner.settled:
                self.stats["unseen_waits_for_partner"] += 1
                return []  # the opposite change is still moving: cancel against its settled size
            self._episodes.remove(ep)
            self._episodes.remove(partner)
            self._cancelled_starts.extend((ep.weight.t_start_ns, partner.weight.t_start_ns))
            self.stats["unseen_pairs_cancelled"] += 1
            return []
        if ep.sign > 0 and (cfg.glimpse_groups or cfg.glimpse_weak_min_prob > 0):
            # Glimpses of look-alike groups, and weak ones, are vaguer than one SKU's: they book
            # only a rise about to be an alarm, when no track came during the whole unseen hold.
            found = self._glimpse_unit(ep, hold_ended=True)
            if found is not None:
                return self._after_commit(ep, self._commit_untracked(ep, *found))
        if ep.sign > 0:
            found = self._twin_unit(ep)
            if found is not None:
                return self._after_commit(ep, self._commit_untracked(ep, *found))
        if ep.sign < 0:
            exchanged = self._exchange(ep)
            if exchanged:  # one change, both halves booked at once: no partner for the swap alarm
                ep.committed = True
                return exchanged
        if (ep.sign < 0 and self._alarmed_rises and self._explain(ep, use_vision=False)[0].outlier
                and self._alarm_return(ep)):
            return []
        unconfirmed = [self._unconfirmed(v) for v in self._strongest(ep) if ep.sign > 0 and self._confident(v)]
        reread = self._reread(ep, use_vision=False)
        return unconfirmed + reread + self._after_commit(ep, self._commit_unseen(ep), unseen=True)

    def _after_commit(self, ep: _Episode, events: list[Event], unseen: bool = False) -> list[Event]:
        """Remember adds and removals (for the exchange alarm) and unseen removals (for
        put-backs, unless half of an exchange alarm: ``putback_after_swap``); raise the exchange
        alarm when a removal was lifted right after an add settled, whichever of the two was
        decided first."""
        w = ep.weight
        out = list(events)
        removed = Counter()
        for e in events:
            if e.type == "item_removed":
                removed[e.sku] += e.qty
        swapped = any(e.type == "weight_mismatch" for e in events)  # an exchange booked at once
        if unseen and removed and (self.config.putback_after_swap or not swapped):
            # Before the alarms below: one raised on a removal takes it back off (_exchange_alarm).
            self._unseen_removals.append((w.t_settled_ns, tuple(sorted(removed.items()))))
        for e in events:
            if e.type == "item_added":
                out += self._exchange_alarm(w.t_settled_ns, e, added=True)
                self._recent_adds.append((w.t_settled_ns, e))
            elif e.type == "item_removed":
                out += self._exchange_alarm(w.t_start_ns, e, added=False)
                self._recent_removals.append((w.t_start_ns, e))
        return out

    def _exchange_alarm(self, t_ns: int, event: Event, *, added: bool) -> list[Event]:
        """``weight_mismatch`` naming both products when an add (settled at ``t_ns``) and a
        removal (lifted at ``t_ns``) of another SKU lie at most ``swap_window_s`` apart, the add
        first: one hand visit exchanging products, a possible ticket switch. Each half raises
        at most one alarm."""
        window = int(self.config.swap_window_s * _NS)
        if window <= 0:
            return []
        partners = self._recent_removals if added else self._recent_adds
        for i in range(len(partners) - 1, -1, -1):
            t_other, other = partners[i]
            add, rem, gap = (event, other, t_other - t_ns) if added else (other, event, t_ns - t_other)
            if 0 <= gap <= window and add.sku != rem.sku:
                del partners[i]
                self.stats["exchange_alarms"] += 1
                evidence = {"exchange": {"added": add.sku, "removed": rem.sku, "gap_s": round(gap / _NS, 3)}}
                if not self.config.putback_after_swap:  # a unit swapped out is no put-back
                    self._unseen_removals = [r for r in self._unseen_removals
                                             if not (r[0] == rem.t_ns and rem.sku in dict(r[1]))]
                t_alarm = max(event.t_ns, other.t_ns)
                return [self._event("weight_mismatch", t_alarm, add.sku, 1, min(add.confidence, rem.confidence),
                                    rem.weight_delta_g, add.track_id, evidence=evidence)]
        return []

    def _cancelling_partner(self, ep: _Episode) -> _Episode | None:
        for other in self._episodes:
            if other is ep or other.committed or other.sign == ep.sign or any(not v.ev.in_place for v in other.vision):
                continue
            a, b = ep.weight, other.weight
            if self._cancels(a.delta_g, a.sigma_g, b.delta_g, b.sigma_g):
                return other
        return None

    def _cancels(self, delta_a: float, sigma_a: float, delta_b: float, sigma_b: float) -> bool:
        """Two opposite changes of one product: their sum lies within ``cancel_sigmas`` combined
        standard deviations of zero (both changes' errors, the scale noise of each, the
        calibration error of the first)."""
        cfg = self.config
        sd = math.sqrt(sigma_a ** 2 + sigma_b ** 2 + 2 * cfg.scale_noise_g ** 2 + (cfg.relative_error * delta_a) ** 2)
        return abs(delta_a + delta_b) <= cfg.cancel_sigmas * sd

    # -- explanations --------------------------------------------------------------------------

    def _sigma(self, w: WeightChange) -> float:
        return math.sqrt(w.sigma_g ** 2 + self.config.scale_noise_g ** 2)

    def _explain(self, ep: _Episode, use_vision: bool = True) -> list[Explanation]:
        """The explanations of the episode's change, cached until its inputs (the change, the
        tracks and their candidates, the basket) change: held episodes are re-decided every tick."""
        key = self._inputs_key(ep, ep.vision, use_vision)
        if ep.cache and ep.cache[0] == key:
            return ep.cache[1]
        exps = self._search(ep, use_vision)
        ep.cache = (key, exps)
        return exps

    def _inputs_key(self, ep: _Episode, vision: list[_Vision], use_vision: bool) -> tuple:
        """What an episode's explanations depend on: its change, the tracks with their
        candidates and floor places, the basket."""
        hands = self._hands_during(ep.weight)
        glimpsed = self._spare_glimpses(ep.weight) if hands > 1 else {}  # a spare hand needs two
        return (ep.weight, use_vision, tuple((v.ev, v.candidates, self._track_floor.get(v.ev.track_id)) for v in vision),
                self._basket_version, hands, tuple(sorted(glimpsed.items())))

    def _search(self, ep: _Episode, use_vision: bool) -> list[Explanation]:
        cfg = self.config
        w = ep.weight
        tracks = self._strongest(ep) if (use_vision and self.mode != "weight_only") else []
        spare = False
        if ep.sign > 0:
            carried = self._carried_looks(ep) if cfg.carried_look_resighted else frozenset()
            levels = [self._add_options(v, w.delta_g, len(tracks), carried) for v in tracks]
            others = self._other_looks(ep, tracks)
            spare = self._spare_hand(ep, tracks)
            pool = self._add_pool(tracks, [skus for _, skus in others], spare,
                                  self._spare_glimpses(w) if spare else None)
            available = None
        else:
            levels = [self._remove_options(v, w.t_start_ns) for v in tracks]
            pool = self._basket_pool()
            available = dict(self.basket.counts())
        extra = self._extra_log_prior(len(tracks), spare)
        exps = explain(w.delta_g, self._sigma(w), levels=levels, pool=pool, extra_log_prior=extra,
                       relative_error=cfg.relative_error, z_prune=cfg.z_prune,
                       outlier_log_prior=math.log(cfg.outlier_prior), outlier_range_g=cfg.outlier_range_g,
                       available=available, cop=w.cop if tracks else None, cop_std=cfg.cop_std)
        if ep.sign > 0 and others and cfg.other_look_evidence:
            exps = self._with_other_looks(exps, [u for u, _ in others])
        if (ep.sign < 0 and not tracks and cfg.unit_places and self.mode == "fusion" and w.cop is not None
                and cfg.cop_std > 0):
            exps = self._with_places(exps, w)
        return exps

    def _with_places(self, exps: list[Explanation], w: WeightChange) -> list[Explanation]:
        """A removal no track accounts for, re-weighed by where the basket's units lay
        (``unit_places``): a one-unit explanation scores the mean, over the basket's units of its
        SKU, of the density of the change's centre of pressure around the unit's place when the
        weight began to fall (its booked track's floor position: a normal of ``cop_std`` per
        axis), a unit of unknown place -- booked without a track, or never placed -- the
        uniform density 1 of the floor; so does every other explanation. Which of two
        weigh-alike lines left is then where the weight left from (unseen W lookalike seed
        8104: a 530 g yoghurt lifted out, booked as 522 g crackers)."""
        var = self.config.cop_std ** 2
        scored = []
        for e in exps:
            add = 0.0
            line = self.basket.line(e.counts[0][0]) if not e.outlier and e.units == 1 else None
            if line is not None and line.qty:
                total = 0.0
                for u in line.units:
                    at = self._floor_at(u.track_id, w.t_start_ns) if u.track_id is not None else None
                    if at is None:
                        total += 1.0
                    else:
                        d2 = (w.cop[0] - at[0]) ** 2 + (w.cop[1] - at[1]) ** 2
                        total += math.exp(-d2 / (2.0 * var)) / (2.0 * math.pi * var)
                add = math.log(max(total / line.qty, 1e-300))
            scored.append((e, e.log_score + add))
        return _reweighed(scored)

    def _with_other_looks(self, exps: list[Explanation], others: list[_Vision]) -> list[Explanation]:
        """The explanations re-weighed by the tracks' other looks (:meth:`_other_looks`): each
        such look saw one of the products that came in, so an explanation scores the mean, over
        its units, of that look's probability of the unit's SKU; the outlier scores the uniform
        1/N. Two units of the SKU the track was taken for then pay for the look that showed
        another product, and that product put down beside it is preferred (busy seed 6001)."""
        dists = [self._vision_dist(u.candidates) for u in others]
        uniform = math.log(1.0 / len(self.catalog))
        scored = []
        for e in exps:
            if e.outlier or not e.counts:
                add = uniform * len(dists)
            else:
                n = e.units
                add = sum(math.log(max(1e-12, sum(c * d.get(s, 0.0) for s, c in e.counts) / n)) for d in dists)
            scored.append((e, e.log_score + add))
        return _reweighed(scored)

    def _vision_dist(self, cands: Candidates) -> dict[str, float]:
        """Top-k probabilities -- their odds tempered by ``vision_temperature`` (p^(1/T), keeping
        their total) -- with the remaining mass spread over the rest of the catalogue, mixed with
        ``vision_floor`` of a uniform prior (confidently wrong vision stays correctable). Top-k
        SKUs below ``vision_tail_prob`` count with the rest: tempering would lift them far above
        every unranked SKU on no evidence."""
        n = len(self.catalog)
        phi = self.config.vision_floor
        top = dict(self._ranked(cands))
        mass = sum(top.values())
        t = self.config.vision_temperature
        if t != 1.0 and len(top) > 1:
            tempered = {s: q ** (1.0 / t) for s, q in top.items()}
            scale = mass / (sum(tempered.values()) or 1.0)
            top = {s: q * scale for s, q in tempered.items()}
        rest = max(0.0, 1.0 - mass) / (n - len(top)) if n > len(top) else 0.0
        return {p.sku: (1 - phi) * top.get(p.sku, rest) + phi / n for p in self.catalog}

    def _ranked(self, cands: Candidates) -> Candidates:
        """The candidates that count as what a track looks like: its top SKU, those it gives at
        least ``vision_tail_prob``, and look-alikes of these however low (look-alikes split a look
        among themselves, so a low rank among them is still evidence). The rest of a top-k list
        is noise."""
        tail = self.config.vision_tail_prob
        if tail <= 0.0 or not cands:
            return cands
        kept = {s for i, (s, q) in enumerate(cands) if i == 0 or q >= tail}
        alike = set(kept)
        for s in kept:
            alike.update(self.catalog.lookalikes(s))
        return tuple((s, q) for s, q in cands if s in alike)

    def _count_log_prior(self, n: int) -> float:
        r, k = self.config.multi_unit_prior, self.config.max_qty_per_track
        return math.log((1 - r) * r ** (n - 1) / (1 - r ** k))

    def _strongest(self, ep: _Episode) -> list[_Vision]:
        """The episode's tracks that are explained jointly, in time order: one transition per
        track (its strongest: carried in, then found in place, then a booked item seen again; the
        latest among equals -- a track that flickered out and back is one track; a booked track's
        other looks where it showed its own product are left out, :meth:`_without_occluded`),
        then the _MAX_TRACKS strongest of those. For a removal, among equally weak ones, tracks that
        brought a line of the basket in come first: their leaving names the product; then, for
        either sign, the more confident look (a product found in place and seen at 1.0 is
        better evidence than an earlier one seen at 0.5 -- unseen busy seed 7002, five tracks
        at once); then the earlier. The rest are taken for duplicates and consumed with the
        episode."""
        per_track: dict[int, _Vision] = {}
        for v in sorted(self._without_occluded(ep.vision), key=lambda v: (self._spurious(v), -v.ev.t_ns)):
            per_track.setdefault(v.ev.track_id, v)
        removal = ep.sign < 0
        ranked = sorted(per_track.values(), key=lambda v: (
            self._spurious(v), not (removal and self._booked(v.ev.track_id)),
            -(v.candidates[0][1] if v.candidates else 0.0), v.ev.t_ns, v.ev.track_id))
        return sorted(ranked[:_MAX_TRACKS], key=lambda v: (v.ev.t_ns, v.ev.track_id))

    def _without_occluded(self, vision: list[_Vision]) -> list[_Vision]:
        """``vision`` less the other looks of a booked track that looked like its own product
        (:meth:`_own_look`) where that look lay (within ``reentry_max_move``): the product seen
        again is what the track showed there, the other looks the hand or a neighbour passing
        over it. A look elsewhere is kept: the tracker may have handed the track a new product."""
        own = [self._own_look(v) for v in vision]
        places: dict[int, list[tuple[float, float]]] = {}
        for v, mine in zip(vision, own):
            if mine and v.ev.floor_uv is not None:
                places.setdefault(v.ev.track_id, []).append(v.ev.floor_uv)
        if not places:
            return vision
        limit = self.config.reentry_max_move
        return [v for v, mine in zip(vision, own)
                if mine or not v.ev.in_place or v.ev.kind == LEFT or v.ev.floor_uv is None
                or not any(math.dist(p, v.ev.floor_uv) <= limit for p in places.get(v.ev.track_id, ()))]

    def _booked(self, track_id: int) -> set[str]:
        """The SKUs of basket units that this track brought in."""
        return {line.sku for line in self.basket if track_id in line.track_ids}

    def _reentry(self, v: _Vision) -> bool:
        """An in-place entry that looks like a product already in the basket, or like the one its
        track brought in (:meth:`_own_look`)."""
        return (v.ev.in_place and v.ev.kind != LEFT and bool(v.candidates)
                and (v.candidates[0][0] in self.basket or self._own_look(v)))

    def _own_look(self, v: _Vision) -> bool:
        """An in-place entry of a booked track that looks like the product the track brought in:
        its top SKU is that product, or a look-alike of it while the track lies within
        ``reentry_max_move`` of where it lay ``_PLACE_LOOKBACK_S`` before (look-alikes split a
        look among themselves; a track that moved was handed a new product of the group)."""
        if not v.ev.in_place or v.ev.kind == LEFT or not v.candidates:
            return False
        booked = self._booked(v.ev.track_id)
        top = v.candidates[0][0]
        if top in booked:
            return True
        if self.config.reentry_max_move <= 0.0 or not booked & set(self.catalog.lookalikes(top)):
            return False
        return self._in_its_place(v) is True

    def _in_its_place(self, v: _Vision) -> bool | None:
        """The track lies within ``reentry_max_move`` of where it lay ``_PLACE_LOOKBACK_S``
        before (its product did not move); None when either place is unknown."""
        now = v.ev.floor_uv
        before = self._floor_at(v.ev.track_id, v.ev.t_ns - int(_PLACE_LOOKBACK_S * _NS))
        if now is None or before is None:
            return None
        return math.dist(now, before) <= self.config.reentry_max_move

    def _spurious(self, v: _Vision) -> float:
        if not v.ev.in_place:
            return self.config.spurious_track_prior
        if v.ev.kind == LEFT:  # a booked item's track went unseen: usually a hand over it
            return self.config.reentry_spurious_prior
        if self._reentry(v):
            # Looks like a product already in the basket: most often that product seen again
            # (under its own track or a duplicate one), sometimes a second unit of it.
            return self.config.reentry_spurious_prior
        if self.config.booked_tracks_resighted and self._booked(v.ev.track_id) and self._in_its_place(v) is not False:
            # The track of a product still in the basket, found again where it lay looking like
            # another one: mostly that product under or through a hand (booked_tracks_resighted);
            # a track that moved was handed a new product.
            return self.config.reentry_spurious_prior
        return self.config.in_place_spurious_prior

    def _carried_looks(self, ep: _Episode) -> frozenset[str]:
        """The top SKUs of the tracks carried into the add ``ep``, with their look-alikes."""
        tops = [v.candidates[0][0] for v in ep.vision if not v.ev.in_place and v.ev.kind == ENTERED and v.candidates]
        return frozenset(self._with_lookalikes(tops))

    def _add_options(self, v: _Vision, delta_g: float, n_tracks: int, carried: frozenset[str] = frozenset()) -> list[Option]:
        cfg = self.config
        dist = self._vision_dist(v.candidates)
        labels = [s for s, _ in self._ranked(v.candidates)]
        if not v.ev.in_place:  # a track found in place can only be what it looks like, or nothing
            labels = self._with_lookalikes(labels)
            if n_tracks == 1:
                labels += self._weight_fits(abs(delta_g))
        ps = self._spurious(v)
        if v.ev.in_place and v.ev.kind != LEFT and v.candidates and v.candidates[0][0] in carried:
            # Looks like a product carried in with this change (``carried_look_resighted``):
            # mostly that product seen again through a box over it and its neighbours.
            ps = max(ps, cfg.reentry_spurious_prior)
        if self._reentry(v):  # a second unit of what it looks like (or of its look-alike), or nothing
            labels = self._with_lookalikes(labels[: cfg.reentry_labels])
        opts = [Option(None, 0, math.log(ps), 0.0, 0.0)]
        for sku in dict.fromkeys(labels):
            p = self.catalog[sku]
            for n in range(1, cfg.max_qty_per_track + 1):
                lp = math.log(1 - ps) + math.log(dist[sku]) + self._count_log_prior(n)
                opts.append(Option(sku, n, lp, n * p.weight_g, n * p.weight_std_g ** 2, self._floor_of(v)))
        return opts

    def _with_lookalikes(self, skus: list[str]) -> list[str]:
        """``skus`` followed by their look-alikes (repeats possible)."""
        return skus + [alike for s in skus for alike in self.catalog.lookalikes(s)]

    def _floor_of(self, v: _Vision, t_ns: int | None = None) -> tuple[float, float] | None:
        """Where the track's product lies, for the centre of pressure: an entry's latest floor
        position (where it came to rest); a departure's position at ``t_ns``, the start of the
        weight change (where it lay before the lift, not where the hand carried it since)."""
        if v.ev.kind == LEFT and t_ns is not None:
            at = self._floor_at(v.ev.track_id, t_ns)
            if at is not None:
                return at
        return self._track_floor.get(v.ev.track_id, v.ev.floor_uv)

    def _weight_fits(self, target_g: float) -> list[str]:
        """The ``weight_candidates`` SKUs whose n units (n <= max_qty_per_track) come closest to
        ``target_g`` in standard deviations."""
        cfg = self.config
        scored = []
        for p in self._by_weight:
            best = min(self._fit_z(target_g, p, n) for n in range(1, cfg.max_qty_per_track + 1))
            scored.append((best, p.sku))
        scored.sort()
        return [s for z, s in scored[: cfg.weight_candidates] if z <= cfg.z_prune]

    def _fit_z(self, target_g: float, product: Product, n: int, extra_var_g2: float = 0.0) -> float:
        """How many standard deviations ``n`` units of ``product`` lie from ``target_g``: scale
        noise, the units' spread, the relative error and ``extra_var_g2`` (a measured change's own
        variance) together."""
        cfg = self.config
        var = cfg.scale_noise_g ** 2 + n * product.weight_std_g ** 2 + (cfg.relative_error * target_g) ** 2 + extra_var_g2
        return abs(target_g - n * product.weight_g) / math.sqrt(var)

    def _spare_hand(self, ep: _Episode, tracks: list[_Vision]) -> bool:
        """An add that tracks carried products into while more hands were in view than those
        tracks (``spare_hand_prior``): the spare hand most likely put a product down unseen."""
        if self.config.spare_hand_prior <= 0.0:
            return False
        carried = sum(not v.ev.in_place for v in tracks)
        return carried > 0 and self._hands_during(ep.weight) > carried

    def _spare_glimpses(self, w: WeightChange) -> dict[str, float]:
        """What the glimpses (:meth:`add_glimpses`, every kind) from ``pair_before_s`` before the
        change started until it settled looked like: each SKU's share of the glimpse frames
        (a group glimpse counts for each member), for the product a spare hand put down
        (``spare_glimpse_weight``). Empty when off or none."""
        if self.config.spare_glimpse_weight <= 0.0 or self.config.spare_hand_prior <= 0.0 or not self._glimpses:
            return {}
        lo = w.t_start_ns - int(self.config.pair_before_s * _NS)
        frames: dict[str, set[int]] = {}
        for t, sku, _p, kind, _box in self._glimpses:
            if lo <= t <= w.t_settled_ns:
                for s in (self._with_lookalikes([sku]) if kind == GLIMPSE_GROUP else [sku]):
                    frames.setdefault(s, set()).add(t)
        total = sum(len(f) for f in frames.values())
        return {s: len(f) / total for s, f in frames.items()} if total else {}

    def _add_pool(self, tracks: list[_Vision], other_looks: Sequence[list[str]] = (),
                  spare_hand: bool = False, glimpsed: dict[str, float] | None = None) -> list[PoolItem]:
        """Where an extra unit (one no track carried) comes from: half a uniform prior, half the
        tracks' vision, and ``extra_runner_up_share`` of it from the tracks' runners-up -- two
        products carried in under one box are one track that looks like the bigger of them, and
        the other one is what it looks like next (ranks 2 to ``extra_runner_up_ranks``), however
        unlikely its posterior makes it -- and ``extra_other_look_share`` from the SKUs that the
        tracks' other looks rank and no explaining look names (:meth:`_other_looks`). With a
        spare hand, ``spare_hand_prior`` more, spread over the catalogue, and
        ``spare_glimpse_weight`` times that over what the glimpses around the change looked
        like (``glimpsed``, :meth:`_spare_glimpses`): a glimpse adds to a SKU's share and takes
        nothing from another's but the normalisation."""
        n = len(self.catalog)
        if tracks:
            dists = [self._vision_dist(v.candidates) for v in tracks]
            prior = {p.sku: 0.5 / n + 0.5 * sum(d[p.sku] for d in dists) / len(dists) for p in self.catalog}
            beta = self.config.extra_runner_up_share
            ranks = self.config.extra_runner_up_ranks  # what the box looks like next, not its whole tail
            runners = [r for r in ([s for s, _ in v.candidates[1:ranks]] for v in tracks) if r]
            for share, lists in ((beta, runners), (self.config.extra_other_look_share, other_looks)):
                if share > 0 and lists:
                    prior = {s: (1 - share) * q for s, q in prior.items()}
                    for r in lists:
                        for s in r:
                            prior[s] += share / (len(lists) * len(r))
        else:
            prior = {p.sku: 1.0 / n for p in self.catalog}
        if spare_hand:  # or the product a spare hand put down: any in the catalogue, or one glimpsed
            e, h = self.config.extra_unit_prior, self.config.spare_hand_prior
            g = self.config.spare_glimpse_weight if glimpsed else 0.0
            glimpsed = glimpsed or {}
            prior = {s: (e * q + h / n + h * g * glimpsed.get(s, 0.0)) / (e + h + h * g) for s, q in prior.items()}
        return [PoolItem(p.sku, math.log(prior[p.sku]), p.weight_g, p.weight_std_g ** 2) for p in self.catalog]

    def _other_looks(self, ep: _Episode, tracks: list[_Vision]) -> list[tuple[_Vision, list[str]]]:
        """The other looks of the explained tracks in this episode that showed a product no
        explaining look names (neither its ranked candidates nor their look-alikes), each with
        the SKUs it ranks that no explaining look names. A track
        that followed two products put down together shows one, then the other, under one
        track id (busy seed 6001: carried in looking like one product, then found in place
        looking like the other); the explanation takes one look per track, and the other look
        names a second product (an extra unit: :meth:`_add_pool`, :meth:`_with_other_looks`)."""
        # Names no new product either: a look of another explained track's product (a neighbour
        # passed under the box: busy seed 2007), of one heavier than the whole rise (a hand over
        # the box looks like anything: busy seed 9804, a 1 kg flour in a 750 g add), or of a
        # basket product where it lies (:meth:`_booked_product_there`). A basket product's look
        # elsewhere may be its second unit (busy seed 105).
        cfg = self.config
        if not tracks or (cfg.extra_other_look_share <= 0.0 and not cfg.other_look_evidence):
            return []
        named = self._named(tracks)
        ids = {v.ev.track_id for v in tracks}
        heaviest = abs(ep.weight.delta_g) + 3.0 * self._sigma(ep.weight)
        covered = self._covered_looks(ep, ids, named) if cfg.own_look_returns else set()
        return [(u, [s for s, _ in self._ranked(u.candidates) if s not in named])
                for u in self._without_occluded(ep.vision)
                if u.ev.track_id in ids and u.ev.kind != LEFT and u.candidates and all(u is not v for v in tracks)
                and u.candidates[0][0] not in named and self._fits_under(u.candidates[0][0], heaviest)
                and not self._booked_product_there(u) and id(u) not in covered]

    def _covered_looks(self, ep: _Episode, ids: set[int], named: set[str]) -> set[int]:
        """The looks (``id``) of the explained tracks ``ids`` in this episode that came before
        the track's latest look, when that latest look shows an explained product again (its
        top SKU is ``named``) where they lay (within ``reentry_max_move``; or a place unknown):
        the product was covered for a moment -- a hand over it -- not a second product under
        the track's id, which the track would go on showing (``own_look_returns``). Unseen V
        lookalike seed 8204: lentils carried in at 1.0, then seen in place twice as coffee or
        rice (0.3 / 0.2) while the hand left, and as lentils again; the rice look named a
        second product, and the 508 g add was booked as rice (512 g) with a false
        ``weight_mismatch``. With ``own_look_drift``, looks elsewhere are covered too when the
        latest look lies where an earlier look of the track showed a named product (unseen X
        busy seed 7904: a shampoo carried in, its track dragged by the hand putting a toothpaste
        down beside it, looking like bread 0.2 of the floor away, and back on the shampoo)."""
        looks = [u for u in ep.vision if u.ev.track_id in ids and u.ev.kind != LEFT and u.candidates]
        latest: dict[int, _Vision] = {}
        for u in looks:
            if u.ev.track_id not in latest or u.ev.t_ns >= latest[u.ev.track_id].ev.t_ns:
                latest[u.ev.track_id] = u
        back = {tid: u for tid, u in latest.items() if u.candidates[0][0] in named}
        if not back:
            return set()
        limit = self.config.reentry_max_move
        # Where each returning track's product lay before: its earlier looks of a named product
        # within reentry_max_move of the latest look. The product never moved; the track's box
        # was dragged onto the hand over it and back (``own_look_drift``).
        stayed = set()
        for u in looks if self.config.own_look_drift else ():
            last = back.get(u.ev.track_id)
            if (last is not None and u is not last and u.ev.t_ns <= last.ev.t_ns
                    and u.candidates[0][0] in named and u.ev.floor_uv is not None and last.ev.floor_uv is not None
                    and math.dist(u.ev.floor_uv, last.ev.floor_uv) <= limit):
                stayed.add(u.ev.track_id)
        covered = set()
        for u in ep.vision:
            last = back.get(u.ev.track_id)
            if last is None or u is last or u.ev.t_ns > last.ev.t_ns:
                continue
            here, there = u.ev.floor_uv, last.ev.floor_uv
            if here is None or there is None or math.dist(here, there) <= limit or u.ev.track_id in stayed:
                covered.add(id(u))
        return covered

    def _booked_product_there(self, u: _Vision) -> bool:
        """The look shows a basket product where a track that brought that product in lies
        (within ``reentry_max_move``): the booked product seen again by a neighbouring track
        (shrink seed 8902), not a second unit of it."""
        line, here, limit = self.basket.line(u.candidates[0][0]), u.ev.floor_uv, self.config.reentry_max_move
        if line is None or here is None or limit <= 0.0:
            return False
        places = (self._floor_at(tid, u.ev.t_ns) for tid in line.track_ids)
        return any(p is not None and math.dist(p, here) <= limit for p in places)

    def _fits_under(self, sku: str, grams: float) -> bool:
        """One unit of ``sku`` can weigh ``grams`` or less (within three standard deviations)."""
        p = self.catalog.get(sku)
        return p is not None and p.weight_g - 3.0 * p.weight_std_g <= grams

    def _named(self, tracks: list[_Vision]) -> set[str]:
        """The SKUs the explaining looks name: their ranked candidates and their look-alikes."""
        named = {s for v in tracks for s, _ in self._ranked(v.candidates)}
        for s in list(named):
            named.update(self.catalog.lookalikes(s))
        return named

    def _basket_share(self) -> dict[str, float]:
        counts = self.basket.counts()
        total = sum(counts.values())
        return {s: c / total for s, c in counts.items()} if total else {}

    def _basket_pool(self) -> list[PoolItem]:
        pool = []
        for sku, share in self._basket_share().items():
            p = self.catalog.get(sku)
            if p is not None:
                pool.append(PoolItem(sku, math.log(share), p.weight_g, p.weight_std_g ** 2))
        return pool

    def _removal_dist(self, v: _Vision) -> dict[str, float]:
        """P(the leaving track is SKU s) over the basket's SKUs: vision restricted to the basket,
        boosted where the track itself brought that line in, mixed with the basket shares."""
        share = self._basket_share()
        if not share:
            return {}
        vis = self._vision_dist(v.candidates) if v.candidates else {}
        raw = {s: (vis.get(s, 0.0) if vis else share[s]) for s in share}
        for s in raw:
            line = self.basket.line(s)
            if line is not None and v.ev.track_id in line.track_ids:
                raw[s] *= self.config.track_identity_boost
        total = sum(raw.values())
        phi = self.config.vision_floor
        return {s: (1 - phi) * (raw[s] / total if total > 0 else share[s]) + phi * share[s] for s in share}

    def _remove_options(self, v: _Vision, t_start_ns: int) -> list[Option]:
        ps = self._spurious(v)
        opts = [Option(None, 0, math.log(ps), 0.0, 0.0)]
        for sku, p_s in self._removal_dist(v).items():
            p = self.catalog.get(sku)
            if p is None or p_s <= 0:
                continue
            for n in range(1, min(self.config.max_qty_per_track, self.basket.qty(sku)) + 1):
                lp = math.log(1 - ps) + math.log(p_s) + self._count_log_prior(n)
                opts.append(Option(sku, n, lp, n * p.weight_g, n * p.weight_std_g ** 2, self._floor_of(v, t_start_ns)))
        return opts

    # -- commits -------------------------------------------------------------------------------

    def _commit(self, ep: _Episode, exps: list[Explanation]) -> list[Event]:
        ep.committed = True
        best = exps[0]
        tracks = self._strongest(ep)
        w = ep.weight
        if best.outlier:
            return self._commit_outlier(ep, best)
        out: list[Event] = []
        counts = Counter(dict(best.counts))
        labelled = {}
        seen = self._seen_extras(ep, best)
        for v, (sku, _n) in zip(tracks, best.tracks):
            top, p_top = v.candidates[0] if v.candidates else (None, 0.0)
            if sku is None and v.ev.track_id in seen:
                labelled.setdefault(seen[v.ev.track_id], v.ev.track_id)
                continue
            if sku is None:
                if self._confident(v) and ep.sign > 0:
                    out.append(self._unconfirmed(v))
                self._resighted(v)
                continue
            labelled.setdefault(sku, v.ev.track_id)
            if (self._confident(v) and sku != top and sku not in self.catalog.lookalikes(top)
                    and sku not in self._booked(v.ev.track_id)):
                out.append(self._event("weight_mismatch", w.t_settled_ns, top, 1, best.prob, w.delta_g, v.ev.track_id,
                                       evidence=self._evidence(ep, exps, weight_says=sku)))
                if self.config.mismatch_adds_vision_item and self._can_apply(ep.sign, top, 1):
                    counts[sku] -= 1
                    counts[top] += 1
        total_mean = sum(self.catalog[s].weight_g * n for s, n in counts.items() if n > 0) or 1.0
        for sku, n in counts.items():
            if n <= 0:
                continue
            conf = _marginal(exps, sku, n) if sku in dict(best.counts) and dict(best.counts)[sku] == n else _substituted_confidence(ep, sku)
            share = w.delta_g * self.catalog[sku].weight_g * n / total_mean
            out.append(self._apply(ep.sign, sku, n, conf, share, labelled.get(sku), w.t_settled_ns,
                                   self._evidence(ep, exps)))
            ep.units[sku] += n
            ep.unit_conf[sku] = conf
        ep.untracked = Counter({s: n for s, n in best.extras if counts[s] > 0})
        # Second units of a SKU a track was seen as: counted on that track (n >= 2) or added as
        # extra units of it -- the weight's and the count prior's guess either way (_revise).
        ep.counted = Counter()
        carried = {sku for sku, _n in best.tracks if sku is not None}
        for sku, n in best.tracks:
            if sku is not None and n >= 2:
                ep.counted[sku] += n - 1
        for sku, n in best.extras:
            if sku in carried:
                ep.counted[sku] += n
        for sku in list(ep.counted):
            ep.counted[sku] = max(0, min(ep.counted[sku], counts[sku] - 1))
        # A track booked for this change stands for this change's product now: an earlier add's
        # audit of it would take this product's resting looks for a better look at that add's.
        # The audit passes to this change (an add), even when the track was found in place.
        moved = set()
        for tid in set(labelled.values()):
            a = self._audits.get(tid)
            if a is not None and a.ep is not ep:
                del self._audits[tid]
                moved.add(tid)
        if ep.sign > 0 and self.config.reread_window_s > 0 and len(exps) > 1:
            ep.readings = list(exps)
            self._rereadable.append((ep, self.now_ns))
        if ep.sign > 0 and self.config.audit_window_s > 0 and self.mode == "fusion":
            if not any(e.type == "weight_mismatch" for e in out):  # the audits: a sharper look may revise it
                carriers = dict(labelled)
                for v, (sku, _n) in zip(tracks, best.tracks):
                    if (sku is not None and (not v.ev.in_place or v.ev.track_id in moved)
                            and labelled.get(sku) == v.ev.track_id):
                        self._audits[v.ev.track_id] = _Audit(ep, v.ev.track_id, carriers, self.now_ns)
            if self._auditable(ep):
                self._census_audits.append((ep, self.now_ns))
        # Tracks beyond _MAX_TRACKS: duplicates of the explained items, consumed silently.
        return out

    def _commit_outlier(self, ep: _Episode, best: Explanation) -> list[Event]:
        w = ep.weight
        confident = [v for v in self._strongest(ep) if self._confident(v)]
        evidence = self._evidence(ep, [best])
        if not confident:
            self._note_alarmed(ep)
            return [self._event("unexpected_weight", w.t_settled_ns, None, 0, self._unseen_confidence(), w.delta_g, None,
                                evidence=evidence)]
        out = []
        for v in confident:
            top, p_top = v.candidates[0]
            out.append(self._event("weight_mismatch", w.t_settled_ns, top, 1, best.prob, w.delta_g, v.ev.track_id,
                                   evidence=evidence))
            if self._can_apply(ep.sign, top, 1):
                # No catalogue units fit the weight, so it identifies nothing: book what was seen,
                # at no more than even odds.
                out.append(self._apply(ep.sign, top, 1, 0.5 * p_top, None, v.ev.track_id, w.t_settled_ns, evidence))
                ep.units[top] += 1
        return out

    def _commit_unseen(self, ep: _Episode) -> list[Event]:
        """A weight change nobody saw. A rise is an alarm (possible shrink); a fall that fits
        basket units is an unseen removal; any other fall is an alarm too."""
        ep.committed = True
        w = ep.weight
        exps = self._explain(ep, use_vision=False)
        best = exps[0]
        evidence = self._evidence(ep, exps)
        if ep.sign < 0 and not best.outlier:
            out = []
            for sku, n in best.counts:
                out.append(self._apply(-1, sku, n, _marginal(exps, sku, n), w.delta_g * self.catalog[sku].weight_g * n
                                       / best.mean_g, None, w.t_settled_ns, evidence))
                ep.units[sku] += n
            ep.untracked = Counter(dict(best.counts))
            return out
        if ep.sign > 0 and not best.outlier:
            returned = self._put_back(ep, best, exps, evidence)
            if returned:
                return returned
        sku, qty = None, 0
        if not best.outlier and len(best.counts) == 1 and best.prob >= 0.5:
            sku, qty = best.counts[0]
        self.stats["unexpected_weight"] += 1
        self._note_alarmed(ep)
        return [self._event("unexpected_weight", w.t_settled_ns, sku, qty, self._unseen_confidence(), w.delta_g, None,
                            evidence=evidence)]

    def _exchange(self, ep: _Episode) -> list[Event]:
        """An unseen fall explained as one hand visit exchanging products: a SKU that a track's
        last entry (carried in or found in place) between ``pair_before_s`` before the change
        started and ``add_pair_after_s`` after it settled looked like, put down, and a basket
        unit of another SKU taken out, the scale reporting only their difference. Scored as an
        unseen removal is (the removed unit's basket share, the weight's normal likelihood)
        times ``exchange_prior`` times the added SKU's look, against the unseen explanations'
        total; booked when it is the more probable: ``item_removed``, ``item_added`` (no
        ``weight_delta_g`` of their own: the scale saw only the difference) and the exchange
        ``weight_mismatch`` (``evidence.exchange.gap_s`` 0). Empty when no exchange wins."""
        cfg = self.config
        w = ep.weight
        if cfg.exchange_prior <= 0.0:
            return []
        exps = self._explain(ep, use_vision=False)  # the unseen explanations (cached)
        if exps[0].prob <= 0.0:
            return []
        lo = w.t_start_ns - int(cfg.pair_before_s * _NS)
        hi = w.t_settled_ns + int(cfg.add_pair_after_s * _NS)
        latest: dict[int, _Vision] = {}  # per track its last look: what it showed once the hand left
        for v in list(ep.vision) + self._pool:
            if v.ev.kind == ENTERED and v.candidates and lo <= v.ev.t_ns <= hi:
                if v.ev.track_id not in latest or v.ev.t_ns > latest[v.ev.track_id].ev.t_ns:
                    latest[v.ev.track_id] = v
        looks: dict[str, tuple[float, _Vision]] = {}
        for v in latest.values():
            dist = self._vision_dist(v.candidates)
            for sku in self._with_lookalikes([s for s, _ in self._ranked(v.candidates)]):
                if dist[sku] > looks.get(sku, (0.0, v))[0]:
                    looks[sku] = (dist[sku], v)
        share = self._basket_share()
        if not looks or not share:
            return []
        sigma2 = self._sigma(w) ** 2
        best: tuple[float, str, str] | None = None
        for added, (q, _v) in looks.items():
            a = self.catalog[added]
            for removed, sh in share.items():
                r = self.catalog.get(removed)
                if r is None or removed == added or sh <= 0.0:
                    continue
                mu = a.weight_g - r.weight_g
                var = sigma2 + a.weight_std_g ** 2 + r.weight_std_g ** 2 + (cfg.relative_error * mu) ** 2
                if abs(w.delta_g - mu) > cfg.z_prune * math.sqrt(var):
                    continue
                score = math.log(cfg.exchange_prior * q * sh) + log_normal(w.delta_g, mu, var)
                if best is None or score > best[0]:
                    best = (score, added, removed)
        if best is None:
            return []
        p_ex = 1.0 / (1.0 + math.exp(min(700.0, _log_evidence(exps) - best[0])))  # against every unseen explanation
        if p_ex < 0.5:
            return []
        _, added, removed = best
        v = looks[added][1]
        if v in self._pool:
            self._pool.remove(v)
        track = v.ev.track_id
        self.stats["exchanges"] += 1
        evidence = dict(self._evidence(ep, exps))
        evidence["exchange"] = {"added": added, "removed": removed, "gap_s": 0.0, "prob": round(p_ex, 4)}
        rem = self._apply(-1, removed, 1, p_ex, None, None, w.t_settled_ns, evidence)
        add = self._apply(1, added, 1, p_ex, None, track, w.t_settled_ns, evidence)
        ep.units[removed] += 1  # a fall's units are the ones it took out
        alarm = self._event("weight_mismatch", w.t_settled_ns, added, 1, p_ex, w.delta_g, track, evidence=evidence)
        return [rem, add, alarm]

    def _best_single(self, w: WeightChange, strength: dict[str, float], least: float) -> tuple[float, str] | None:
        """Of the SKUs whose ``strength`` (the census's share of frames, the glimpses' number of
        frames) reaches ``least`` and one unit of which fits the change (:meth:`_one_unit_z`),
        the strongest, then the best fit: ``(strength, sku)``; None when there is none."""
        fits = []
        for sku, k in strength.items():
            z = self._one_unit_z(w, sku) if k >= least else None
            if z is not None:
                fits.append((k, -z, sku))
        if not fits:
            return None
        k, _z, sku = max(fits)
        return k, sku

    def _one_unit_z(self, w: WeightChange, sku: str) -> float | None:
        """How far one unit of ``sku`` lies from the change (combined standard deviations), when
        it fits within ``z_prune / 2``; else (or an unknown SKU) None."""
        product = self.catalog.get(sku)
        if product is None:
            return None
        z = self._fit_z(w.delta_g, product, 1, w.sigma_g ** 2)
        return z if z <= self.config.z_prune / 2 else None

    def _census_frames(self, t_from: int) -> list[Counter]:
        """The census frames since ``t_from``: per SKU, how many more resting products were seen
        than the basket holds now, less the products still waiting to be booked with their own
        tracks (only SKUs left with a surplus). Against the basket as it is now, not as it was in
        each frame: a product counted at rest just before its own add was booked is no surplus
        once it is (unseen U busy seed 8303: counted against the older basket, the product
        that had just been booked revised an earlier add's guess into a second unit of it)."""
        pending = self._pending_tops()
        held = {sku: self.basket.qty(sku) + pending[sku] for t, seen in self._census if t >= t_from for sku in seen}
        return [Counter({sku: n - held[sku] for sku, n in seen.items() if n > held[sku]})
                for t, seen in self._census if t >= t_from]

    def _census_group_seen(self, t_from: int) -> tuple[Counter, int]:
        """In how many census frames since ``t_from`` each look-alike group showed a surplus
        (``census_groups``): its members seen confidently, each as itself or only as the group,
        more often than the basket holds them now, less those still waiting to be booked with
        their own tracks; and the number of frames."""
        by_t = {t: seen for t, seen in self._census if t >= t_from}
        pending = self._pending_tops()
        out: Counter = Counter()
        n = 0
        for t, groups in self._census_groups:
            if t < t_from:
                continue
            n += 1
            seen = by_t.get(t, {})
            for g, k in groups.items():
                members = self._group_members(g)
                total = k + sum(seen.get(m, 0) for m in members)
                held = sum(self.basket.qty(m) + pending[m] for m in members)
                if total > held:
                    out[g] += 1
        return out, n

    def _pending_tops(self) -> Counter:
        """The top SKUs of the carried-in tracks still waiting to be booked: products the census
        may already count at rest before their own add."""
        return Counter(v.candidates[0][0] for v in self._pending_vision() if v.candidates and not v.ev.in_place)

    def _census_seen(self, t_from: int) -> tuple[Counter, int]:
        """In how many census frames since ``t_from`` each SKU showed a surplus
        (:meth:`_census_frames`); and the number of frames."""
        frames = self._census_frames(t_from)
        return Counter(sku for surplus in frames for sku in surplus), len(frames)

    def _census_unit(self, ep: _Episode) -> tuple[str, float, str, dict] | None:
        """``(sku, share, "census", evidence)`` when, over the last ``census_min_s`` (all of it
        after the rise settled), one SKU was counted among the resting products more often than
        the basket holds it in at least ``census_min_share`` of the frames, discounting products
        still waiting to be booked with their own tracks, and one unit of it fits the rise
        (:meth:`_one_unit_z`); the best such SKU by share, then by fit. Else None."""
        cfg = self.config
        w = ep.weight
        t_from = self.now_ns - int(cfg.census_min_s * _NS)
        if t_from < w.t_settled_ns or not self._census:
            return None
        seen, n_frames = self._census_seen(t_from)
        if not n_frames:
            return None
        best = self._best_single(w, {sku: k / n_frames for sku, k in seen.items()}, cfg.census_min_share)
        if best is None:
            return None
        share, sku = best
        return sku, share, "census", {"sku": sku, "share": round(share, 3), "frames": n_frames}

    def _glimpse_unit(self, ep: _Episode, hold_ended: bool = False) -> tuple[str, float, str, dict] | None:
        """``(sku, probability, "glimpse", evidence)`` when, from ``pair_before_s`` before the
        rise started until it settled, one SKU was glimpsed (:meth:`add_glimpses`) in at least
        ``glimpse_min_frames`` frames and one unit of it fits the rise (:meth:`_one_unit_z`); the
        SKU glimpsed in the most frames, then the best fit; ``probability`` is its glimpses'
        mean. Else None. Only one SKU's own glimpses count, each for that SKU -- or, once the
        unseen hold has ended (``hold_ended``), with ``glimpse_groups`` the glimpses of
        look-alike groups too, each for its SKU and its look-alikes (a product of a group looks
        like each member by turns: the weight picks the member); and failing those, with
        ``glimpse_weak_min_prob``, every glimpse since the rise started, weak ones too, in at
        least ``glimpse_weak_min_frames`` frames (a product at rest that no track took, seen
        only vaguely: a thin, never-trained chocolate bar), marked ``weak`` in the evidence."""
        cfg = self.config
        w = ep.weight
        lo = w.t_start_ns - int(cfg.pair_before_s * _NS)
        # Boxes of glimpses before the window: products that lay there already (glimpse_stale_iou).
        stale = (self._glimpse_boxes(lo - int(cfg.pair_before_s * _NS), lo - 1)
                 if cfg.glimpse_stale_iou > 0 else [])
        iou = cfg.glimpse_stale_iou
        if not hold_ended:
            return self._glimpsed(w, lo, w.t_settled_ns, (GLIMPSE_SKU,), False, cfg.glimpse_min_frames,
                                  stale=stale, stale_iou=iou)
        # One SKU's own glimpses alone were asked just before, in the same _decide_unseen call.
        alike = cfg.glimpse_groups
        found = (self._glimpsed(w, lo, w.t_settled_ns, (GLIMPSE_SKU, GLIMPSE_GROUP), True, cfg.glimpse_min_frames,
                                stale=stale, stale_iou=iou)
                 if alike else None)
        if found is None and cfg.glimpse_weak_min_prob > 0:
            # Boxes of glimpses well before the rise: products that lay there already.
            stale = (self._glimpse_boxes(lo, w.t_start_ns - int(cfg.pair_before_s / 2 * _NS))
                     if cfg.glimpse_weak_fresh_iou > 0 else [])
            found = self._glimpsed(w, w.t_start_ns, self.now_ns, (GLIMPSE_SKU, GLIMPSE_GROUP, GLIMPSE_WEAK), alike,
                                   cfg.glimpse_weak_min_frames, stale=stale, stale_iou=cfg.glimpse_weak_fresh_iou,
                                   resighted=cfg.glimpse_weak_resighted, weak=True)
            if found is not None:
                self.stats["weak_glimpse_units"] += 1
        return found

    def _twin_unit(self, ep: _Episode) -> tuple[str, float, str, dict] | None:
        """``(sku, probability, "twin", evidence)`` for a rise no track or glimpse accounts for,
        about to be an alarm, that the weight alone reads best as one unit of a basket SKU, one
        unit of which lay within ``twin_max_dist`` of the rise's centre of pressure when it
        started (its booked track's floor position): a second unit put down on or against its
        twin, the tracker keeping the one track on both (unseen AE busy seed 7207: a 104 g bar
        laid on the bar booked 17 s before, no track or glimpse of its own). ``probability`` is
        that reading's posterior. None when off, when the centre of pressure or the unit's place
        is unknown (no ``floor_half_mm``), or when the weight reads otherwise: a can slipped
        under a bag that happens to weigh like it lies at the bag, but the weight reads the can
        (the shrink scenario's hidden product)."""
        cfg = self.config
        w = ep.weight
        if cfg.twin_max_dist <= 0.0 or w.cop is None:  # (unseen rises are decided in fusion mode only)
            return None
        best = self._explain(ep, use_vision=False)[0]
        if best.outlier or len(best.counts) != 1 or best.counts[0][1] != 1:
            return None
        sku = best.counts[0][0]
        line = self.basket.line(sku)
        near: tuple[float, int] | None = None
        for u in (line.units if line is not None else ()):
            at = self._floor_at(u.track_id, w.t_start_ns) if u.track_id is not None else None
            if at is not None and (d := math.dist(at, w.cop)) <= cfg.twin_max_dist and (near is None or d < near[0]):
                near = (d, u.track_id)
        if near is None:
            return None
        return sku, best.prob, "twin", {"sku": sku, "track_id": near[1], "dist": round(near[0], 3)}

    def _glimpse_boxes(self, lo: int, hi: int) -> list[tuple[str, tuple[float, ...]]]:
        """(SKU, box) of the glimpses with a box in ``[lo, hi]``."""
        return [(g[1], g[4]) for g in self._glimpses if lo <= g[0] <= hi and g[4] is not None]

    def _glimpsed(self, w: WeightChange, lo: int, hi: int, kinds: tuple[int, ...], alike: bool, least: int,
                  stale: Sequence[tuple[str, tuple[float, ...]]] = (), stale_iou: float = 0.0,
                  resighted: bool = False, **detail: Any) -> tuple[str, float, str, dict] | None:
        """The glimpse unit of :meth:`_glimpse_unit` from the glimpses in ``[lo, hi]`` of these
        ``kinds``, each counting for its SKU (and its look-alikes with ``alike``), in at least
        ``least`` frames -- but not for a SKU glimpsed where it lay already: ``stale`` (SKU, box)
        glimpses overlapping it by at least ``stale_iou`` (each for its look-alikes too with
        ``alike``); with ``resighted``, a glimpse whose SKU is in the basket counts for that SKU
        alone, not its look-alikes (that product seen again, or a second unit of it);
        ``detail`` joins its evidence."""
        inside = [g for g in self._glimpses if lo <= g[0] <= hi and g[3] in kinds]
        there: list[list[str]] = [[] for _ in inside]  # per glimpse: the SKUs seen where it lies
        boxed = [i for i, g in enumerate(inside) if g[4] is not None] if stale and stale_iou > 0 else []
        if boxed:
            iou = box_iou([inside[i][4] for i in boxed], [box for _, box in stale])
            for i, row in zip(boxed, iou):
                near = sorted({stale[j][0] for j, x in enumerate(row) if x >= stale_iou})
                there[i] = self._with_lookalikes(near) if alike else near
        seen: dict[str, list[tuple[int, float]]] = {}
        for (t, sku, p, _kind, _box), old in zip(inside, there):
            for s in (self._with_lookalikes([sku]) if alike and not (resighted and sku in self.basket) else [sku]):
                if s not in old:
                    seen.setdefault(s, []).append((t, p))
        best = self._best_single(w, {sku: len({t for t, _ in hits}) for sku, hits in seen.items()}, least)
        if best is None:
            return None
        frames, sku = best
        prob = sum(p for _, p in seen[sku]) / len(seen[sku])
        return sku, prob, "glimpse", {"sku": sku, "frames": int(frames), "prob": round(prob, 3), **detail}

    def _commit_untracked(self, ep: _Episode, sku: str, confidence: float, kind: str, detail: dict) -> list[Event]:
        """Book a rise no track accounts for as one unit of ``sku`` on other vision (``kind``:
        "glimpse" or "census", its ``detail`` under that key of the evidence), no track."""
        ep.committed = True
        w = ep.weight
        evidence = self._evidence(ep, self._explain(ep, use_vision=False))
        evidence[kind] = detail
        ep.units[sku] += 1
        ep.untracked = Counter({sku: 1})
        ep.unit_conf[sku] = confidence
        self.stats[f"{kind}_units"] += 1
        return [self._apply(1, sku, 1, confidence, w.delta_g, None, w.t_settled_ns, evidence)]

    def _pending_vision(self) -> list[_Vision]:
        out = list(self._pool)
        for ep in self._episodes:
            if not ep.committed:
                out += ep.vision
        return out

    def _put_back(self, ep: _Episode, best: Explanation, exps: list[Explanation], evidence: dict) -> list[Event]:
        """An unseen rise that weighs what an unseen removal took out shortly before: the same
        units put back (booked as their return, not an alarm)."""
        w = ep.weight
        horizon = w.t_start_ns - int(self.config.putback_window_s * _NS)
        for rec in reversed(self._unseen_removals):
            t_removed, counts = rec
            if t_removed >= horizon and counts == best.counts:
                self._unseen_removals.remove(rec)
                self.stats["put_backs"] += 1
                return [self._apply(1, sku, n, _marginal(exps, sku, n), w.delta_g * self.catalog[sku].weight_g * n
                                    / best.mean_g, None, w.t_settled_ns, evidence) for sku, n in counts]
        return []

    def _note_alarmed(self, ep: _Episode) -> None:
        """Remember a rise raised as ``unexpected_weight`` and not booked (:meth:`_alarm_return`)."""
        if ep.sign > 0 and self.config.alarm_return_window_s > 0:
            w = ep.weight
            self._alarmed_rises.append((w.t_settled_ns, w.delta_g, w.sigma_g))

    def _alarm_return(self, ep: _Episode) -> bool:
        """A fall no basket units explain (about to be an alarm) that weighs what a rise raised as
        ``unexpected_weight``, and never booked, added within ``alarm_return_window_s`` before:
        that product taken out again. Committed with no event (the basket never held it); the
        rise is matched once, the most recent first, within ``cancel_sigmas`` as cancelling
        changes are."""
        cfg = self.config
        if ep.sign > 0 or cfg.alarm_return_window_s <= 0 or not self._alarmed_rises:
            return False
        w = ep.weight
        since = w.t_start_ns - int(cfg.alarm_return_window_s * _NS)
        for i in range(len(self._alarmed_rises) - 1, -1, -1):
            t_rise, delta_g, sigma_g = self._alarmed_rises[i]
            if t_rise < since or t_rise > w.t_start_ns:
                continue
            if self._cancels(delta_g, sigma_g, w.delta_g, w.sigma_g):
                del self._alarmed_rises[i]
                ep.committed = True
                self.stats["alarm_returns"] += 1
                return True
        return False

    def _unseen_confidence(self) -> float:
        return 1.0 - self.config.vision_miss_rate

    def _confident(self, v: _Vision) -> bool:
        return bool(v.candidates) and not v.ev.in_place and v.candidates[0][1] >= self.config.mismatch_vision_min

    def _expire_vision(self, v: _Vision) -> list[Event]:
        """A transition no weight change claimed in time: a track that may revise an add
        (``may_revise``) does so now, if it still may."""
        if v.may_revise:
            found = self._revision_of(v)
            if found is not None:
                return self._revise(v, *found)
            v = dataclasses.replace(v, may_revise=False, deadline_ns=v.ev.decided_t_ns
                                    + int(self.config.weight_wait_s * _NS))
            if v.deadline_ns > self.now_ns:  # it waited less than weight_wait_s: wait the rest
                self._pool.append(v)
                return []
        if v.ev.kind == ENTERED and v.candidates and not v.ev.in_place:
            self.stats["unconfirmed_item"] += 1
            return [self._unconfirmed(v)]
        self.stats[f"vision_{v.ev.kind}_dropped"] += 1
        self._resighted(v)
        return []

    def _resighted(self, v: _Vision) -> None:
        """A track found in place that looks like a product in the basket, and brought nothing:
        that product seen again under a new track (the tracker lost it under a hand, or handed
        its old track to a product put down beside it). With ``resighted_tracks_booked`` it joins
        the booked tracks, so its vanishing under a hand names the line it looks like."""
        if self.config.resighted_tracks_booked and self._reentry(v) and v.ev.track_id not in self._tracks_in:
            self._tracks_in.add(v.ev.track_id)
            self.stats["resighted_tracks_booked"] += 1

    def _unconfirmed(self, v: _Vision) -> Event:
        top, p_top = v.candidates[0] if v.candidates else (None, 0.0)
        conf = (1.0 - self.config.spurious_track_prior) * min(1.0, sum(p for _, p in v.candidates))
        return self._event("unconfirmed_item", v.ev.t_ns, top, 1 if top else 0, conf, None, v.ev.track_id,
                           t_decided_ns=self.now_ns)

    # -- vision only -------------------------------------------------------------------------

    def _vision_only(self, ev: VisionEvent, cands: Candidates) -> list[Event]:
        """The "weight off" ablation: every track entering for the first time is booked as its
        top-1 SKU (carried in or found in place: without weight the two cannot be told apart
        from an item that was there); a track leaving takes out the line it brought in, else the
        basket line it most looks like. Re-entries and vanishing tracks are ignored."""
        if ev.kind == ENTERED:
            if not cands or ev.track_id in self._tracks_in:
                return []
            sku, p = cands[0]
            return [self._apply(1, sku, 1, p, None, ev.track_id, ev.t_ns, None)]
        if ev.in_place:
            return []
        dist = self._removal_dist(_Vision(ev, 0, cands))
        if not dist:
            return []
        sku = max(sorted(dist), key=lambda s: dist[s])
        return [self._apply(-1, sku, 1, dist[sku], None, ev.track_id, ev.t_ns, None)]

    # -- event construction --------------------------------------------------------------------

    def _can_apply(self, sign: int, sku: str, n: int) -> bool:
        return sign > 0 or self.basket.qty(sku) >= n

    def _apply(self, sign: int, sku: str, n: int, conf: float, delta_g: float | None, track_id: int | None,
               t_ns: int, evidence: dict | None) -> Event:
        conf = min(1.0, max(0.0, conf))
        self._basket_version += 1
        if sign > 0:
            self.basket.add(sku, n, confidence=conf, track_id=track_id, t_ns=t_ns)
            kind = "item_added"
            if track_id is not None:
                self._tracks_in.add(track_id)
                if track_id in self._continued:  # the same product's later track
                    self._tracks_in.add(self._continued.pop(track_id))
        else:
            self.basket.remove(sku, n, track_id=track_id)
            kind = "item_removed"
            self._tracks_in.discard(track_id)
        self.stats[kind] += 1
        return self._event(kind, t_ns, sku, n, conf, delta_g, track_id, evidence=evidence)

    def _event(self, kind: str, t_ns: int, sku: str | None, qty: int, conf: float, delta_g: float | None,
               track_id: int | None, *, evidence: dict | None = None, t_decided_ns: int | None = None) -> Event:
        extras: dict[str, Any] = {"t_decided_ns": int(t_decided_ns if t_decided_ns is not None else self.now_ns)}
        if evidence:
            extras["evidence"] = evidence
        return Event(type=kind, t_ns=int(t_ns), sku=sku, qty=int(qty), confidence=round(min(1.0, max(0.0, conf)), 4),
                     weight_delta_g=None if delta_g is None else round(float(delta_g), 2), track_id=track_id,
                     extras=extras)

    def _evidence(self, ep: _Episode, exps: Iterable[Explanation], weight_says: str | None = None) -> dict[str, Any]:
        alts = []
        for e in list(exps)[:3]:
            label = "outlier" if e.outlier else "+".join(f"{n}x{s}" for s, n in e.counts)
            alts.append([label, round(e.prob, 4)])
        out: dict[str, Any] = {
            "delta_g": round(ep.weight.delta_g, 2),
            "sigma_g": round(self._sigma(ep.weight), 2),
            "tracks": [[v.ev.track_id] + [[s, round(p, 3)] for s, p in v.candidates[:3]] for v in self._strongest(ep)],
            "alternatives": alts,
        }
        if self._hands:  # spare_hand_prior
            out["hands"] = self._hands_during(ep.weight)
        if weight_says is not None:
            out["weight_says"] = weight_says
        return out

    def _known(self, cands: Candidates) -> Candidates:
        """Candidates restricted to catalogue SKUs (a gallery SKU the catalogue lacks cannot be weighed)."""
        return tuple((s, p) for s, p in cands if s in self.catalog)


def _reweighed(scored: list[tuple[Explanation, float]]) -> list[Explanation]:
    """Explanations given new log scores, their posteriors renormalised over the list, most
    probable first."""
    top = max(x for _, x in scored)
    total = sum(math.exp(x - top) for _, x in scored)
    out = [dataclasses.replace(e, log_score=x, prob=math.exp(x - top) / total) for e, x in scored]
    return sorted(out, key=lambda e: -e.prob)


def _log_evidence(exps: list[Explanation]) -> float:
    """Log of the total (unnormalised) likelihood of a change over all its explanations, the
    ones not listed included: the best one's score less the log of its posterior."""
    best = exps[0]
    return best.log_score - math.log(best.prob) if best.prob > 0 else -math.inf


def _marginal(exps: list[Explanation], sku: str, n: int) -> float:
    """P(the change holds exactly n units of sku) over all explanations."""
    return sum(e.prob for e in exps if dict(e.counts).get(sku, 0) == n)


def _substituted_confidence(ep: _Episode, sku: str) -> float:
    """Confidence of a unit substituted by the mismatch policy: the vision probability of it."""
    best = 0.0
    for v in ep.vision:
        best = max(best, dict(v.candidates).get(sku, 0.0))
    return 0.5 * best
