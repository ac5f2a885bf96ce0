"""Explanations of one weight change: which units (SKU x count) account for delta W, and how likely.

An explanation assigns each vision track of the episode a label -- a SKU and a count, or
"spurious" (the track brought nothing) -- and may add a few *extra* units nobody saw. Its
unnormalised log posterior is

    log prior(labels) + log prior(extras) + log N(|dW|; mu, s^2)

    mu  = sum of n * weight_g over the units
    s^2 = sigma_dW^2 + sum of n * weight_std_g^2 + (relative_error * mu)^2

where sigma_dW is the weight event's standard error widened by the scale noise. When the change's
centre of pressure (u, v on the normalised basket floor) is known, each explanation also
predicts it -- the mass-weighted mean of its units' floor positions, units at unknown places
(extra units, tracks without a position) counting as uniform over the floor -- and scores it
with a normal of standard deviation ``cop_std`` per axis widened by that uncertainty. A separate
*outlier* explanation ("no combination of catalogue units did this") has the flat density
``1 / outlier_range_g`` times ``outlier_prior``. Explanations that give the same multiset of
units are merged (their probabilities add); the best-scoring assignment of tracks is kept so
events can name their track. Normalising over all of them gives the posterior.

The search is a depth-first enumeration, tracks first, then extra units in non-decreasing
catalogue order (multisets, not sequences), pruned as soon as the accumulated mean overshoots
|dW| by more than ``z_prune`` standard deviations (every unit weighs > 0, so nothing below can
come back), and at the leaves keeping only explanations within ``z_prune``. Extra units are
looked up by bisection on the pool sorted by weight, so the search stays in the low thousands of
leaves even for a 48-SKU catalogue with two tracks.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Explanation", "Option", "PoolItem", "explain", "log_normal"]

_LOG_2PI = math.log(2.0 * math.pi)


def log_normal(x: float, mean: float, var: float) -> float:
    return -0.5 * ((x - mean) ** 2 / var + _LOG_2PI + math.log(var))


@dataclass(frozen=True)
class Option:
    """One label for one track: ``n`` units of ``sku`` (or ``sku=None``, n=0: spurious track)."""

    sku: str | None
    n: int
    log_prior: float
    mean_g: float
    var_g2: float
    pos: tuple[float, float] | None = None   # the track's place on the normalised floor, if known


@dataclass(frozen=True)
class PoolItem:
    """A SKU that may appear as an extra (unseen) unit: its log prior per unit and unit weight."""

    sku: str
    log_prior: float
    mean_g: float
    var_g2: float


@dataclass
class Explanation:
    """A multiset of units and its posterior. ``counts``: ((sku, n), ...) sorted by SKU.
    ``tracks``: per track of the episode, the label of the best path ((sku or None, n));
    ``extras``: the unseen units of the best path, ((sku, n), ...). Outlier: ``counts == ()``."""

    counts: tuple[tuple[str, int], ...]
    log_score: float
    tracks: tuple[tuple[str | None, int], ...] = ()
    extras: tuple[tuple[str, int], ...] = ()
    best_log: float = -math.inf
    mean_g: float = 0.0
    prob: float = 0.0
    outlier: bool = False
    z: float = 0.0

    @property
    def units(self) -> int:
        return sum(n for _, n in self.counts)


@dataclass
class _Search:
    target: float
    base_var: float
    rel2: float
    z_prune: float
    levels: Sequence[Sequence[Option]]
    pool: Sequence[PoolItem]
    pool_means: list[float]
    extra_log_prior: Sequence[float]
    available: Mapping[str, int] | None
    cop: tuple[float, float] | None = None
    cop_var: float = 0.0
    out: dict[tuple, Explanation] = field(default_factory=dict)
    leaves: int = 0

    def var_of(self, mean: float, var_units: float) -> float:
        return self.base_var + var_units + self.rel2 * mean * mean

    def overshoots(self, mean: float, var_units: float) -> bool:
        return mean - self.target > self.z_prune * math.sqrt(self.var_of(mean, var_units))

    def fits(self, mean: float, var_units: float) -> bool:
        return abs(mean - self.target) <= self.z_prune * math.sqrt(self.var_of(mean, var_units))

    # -- tracks ---------------------------------------------------------------------------

    def tracks(self, level: int, mean: float, var: float, logp: float, counts: dict[str, int], path: list) -> None:
        if level == len(self.levels):
            self.extras(mean, var, logp, counts, path)
            return
        for opt in self.levels[level]:
            if opt.sku is not None and not self._room(counts, opt.sku, opt.n):
                continue
            m2, v2 = mean + opt.mean_g, var + opt.var_g2
            if self.overshoots(m2, v2):
                continue
            if opt.sku is not None:
                counts[opt.sku] = counts.get(opt.sku, 0) + opt.n
            path.append(opt)
            self.tracks(level + 1, m2, v2, logp + opt.log_prior, counts, path)
            path.pop()
            if opt.sku is not None:
                counts[opt.sku] -= opt.n
                if counts[opt.sku] == 0:
                    del counts[opt.sku]

    # -- extra units ----------------------------------------------------------------------

    def extras(self, mean: float, var: float, logp: float, counts: dict[str, int], path: list) -> None:
        max_extra = len(self.extra_log_prior) - 1
        if self.extra_log_prior[0] > -math.inf:
            self.leaf(mean, var, logp + self.extra_log_prior[0], counts, path, ())
        if max_extra >= 1 and self.pool:
            self._extra(1, 0, mean, var, logp, counts, path, [])

    def _extra(self, e: int, start: int, mean: float, var: float, logp: float, counts: dict[str, int], path: list,
               chosen: list[int]) -> None:
        last = e == len(self.extra_log_prior) - 1
        lo, hi = start, len(self.pool)
        if last:  # the final unit must land the total within z_prune: bisect its weight range
            slack = self.z_prune * math.sqrt(self.var_of(self.target, var + max(p.var_g2 for p in self.pool))) + 1e-9
            remaining = self.target - mean
            lo = max(start, bisect.bisect_left(self.pool_means, remaining - slack))
            hi = bisect.bisect_right(self.pool_means, remaining + slack)
        for j in range(lo, hi):
            item = self.pool[j]
            if not self._room(counts, item.sku, 1):
                continue
            m2, v2 = mean + item.mean_g, var + item.var_g2
            if self.overshoots(m2, v2):
                break  # the pool is sorted by weight: every later unit overshoots too
            counts[item.sku] = counts.get(item.sku, 0) + 1
            chosen.append(j)
            lp = logp + item.log_prior
            prior_e = self.extra_log_prior[e]
            if prior_e > -math.inf:
                self.leaf(m2, v2, lp + prior_e + _log_multinomial(chosen), counts, path, tuple(chosen))
            if not last:
                self._extra(e + 1, j, m2, v2, lp, counts, path, chosen)
            chosen.pop()
            counts[item.sku] -= 1
            if counts[item.sku] == 0:
                del counts[item.sku]

    # -- leaves ---------------------------------------------------------------------------

    def leaf(self, mean: float, var: float, logp: float, counts: dict[str, int], path: list, chosen: tuple[int, ...]) -> None:
        if not counts or not self.fits(mean, var):
            return
        self.leaves += 1
        v = self.var_of(mean, var)
        score = logp + log_normal(self.target, mean, v)
        if self.cop is not None:
            score += self._cop_log_likelihood(path, mean)
        key = tuple(sorted(counts.items()))
        ex = self.out.get(key)
        if ex is None:
            ex = self.out[key] = Explanation(key, -math.inf)
        ex.log_score = _logaddexp(ex.log_score, score)
        if score > ex.best_log:
            extras: dict[str, int] = {}
            for j in chosen:
                extras[self.pool[j].sku] = extras.get(self.pool[j].sku, 0) + 1
            ex.best_log, ex.tracks, ex.extras = score, tuple((o.sku, o.n) for o in path), tuple(sorted(extras.items()))
            ex.mean_g, ex.z = mean, (self.target - mean) / math.sqrt(v)

    def _cop_log_likelihood(self, path: list, mean: float) -> float:
        """log N(cop; predicted, s^2) over both floor axes (see the module docstring)."""
        known = [(o.mean_g, o.pos) for o in path if o.sku is not None and o.pos is not None]
        m_known = sum(m for m, _ in known)
        m_unknown = max(mean - m_known, 0.0)
        total = max(mean, 1e-9)
        var = self.cop_var + (m_unknown / total) ** 2 / 12.0  # a uniform position's variance is 1/12
        out = 0.0
        for axis in (0, 1):
            mu = (sum(m * p[axis] for m, p in known) + 0.5 * m_unknown) / total
            out += log_normal(self.cop[axis], mu, var)
        return out

    def _room(self, counts: Mapping[str, int], sku: str, n: int) -> bool:
        if self.available is None:
            return True
        return counts.get(sku, 0) + n <= self.available.get(sku, 0)


def _log_multinomial(chosen: Sequence[int]) -> float:
    """log(e! / prod c_j!) for a multiset of e draws: the orderings of the same extra units."""
    if len(chosen) < 2:
        return 0.0
    counts: dict[int, int] = {}
    for j in chosen:
        counts[j] = counts.get(j, 0) + 1
    return math.lgamma(len(chosen) + 1) - sum(math.lgamma(c + 1) for c in counts.values())


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi, lo = (a, b) if a > b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


def explain(
    delta_g: float,
    sigma_g: float,
    *,
    levels: Sequence[Sequence[Option]],
    pool: Sequence[PoolItem],
    extra_log_prior: Sequence[float],
    relative_error: float,
    z_prune: float,
    outlier_log_prior: float,
    outlier_range_g: float,
    available: Mapping[str, int] | None = None,
    cop: tuple[float, float] | None = None,
    cop_std: float = 0.0,
) -> list[Explanation]:
    """All explanations of ``|delta_g|`` with their posterior ``prob``, best first; the outlier
    explanation is included (``outlier=True``, ``counts=()``).

    levels : per track, its label options (see :class:`Option`).
    pool : SKUs that may appear as extra units; ``extra_log_prior[e]`` is the log prior of e
        extra units (length = most extras + 1; ``-inf`` at 0 forces at least one).
    available : per SKU, the most units an explanation may use (removals: the basket); None: no limit.
    cop, cop_std : the change's centre of pressure on the normalised floor and the standard
        deviation of its prediction per axis; ``cop=None`` or ``cop_std=0`` leaves it out.
    """
    if not (sigma_g >= 0 and math.isfinite(sigma_g)):
        raise ValueError(f"sigma_g = {sigma_g!r}: expected a finite standard error >= 0 grams")
    if not extra_log_prior:
        raise ValueError("extra_log_prior must list at least the log prior of 0 extra units")
    pool = sorted(pool, key=lambda p: (p.mean_g, p.sku))
    search = _Search(
        target=abs(delta_g), base_var=max(sigma_g * sigma_g, 1e-6), rel2=relative_error * relative_error,
        z_prune=z_prune, levels=levels, pool=pool, pool_means=[p.mean_g for p in pool],
        extra_log_prior=extra_log_prior, available=available,
        cop=cop if cop is not None and cop_std > 0 else None, cop_var=cop_std * cop_std,
    )
    search.tracks(0, 0.0, 0.0, 0.0, {}, [])
    found = list(search.out.values())
    outlier = Explanation((), outlier_log_prior - math.log(outlier_range_g), outlier=True)
    found.append(outlier)
    top = max(e.log_score for e in found)
    total = sum(math.exp(e.log_score - top) for e in found)
    for e in found:
        e.prob = math.exp(e.log_score - top) / total
    found.sort(key=lambda e: (-e.prob, e.counts))
    return found
