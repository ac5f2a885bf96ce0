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

The log prior of e extra units is ``extra_log_prior[e]`` plus their units' log priors plus
log(e! / prod c_j!) (the orderings of a multiset with counts c_j).

The search is vectorised with numpy; every explanation that fits within ``z_prune`` is scored
(no score bound is needed to make it fast), in four steps:

1. *Extras table*: every multiset of 0..E pool units whose count e has a finite
   ``extra_log_prior[e]`` (E = len(extra_log_prior) - 1; 1 + 48 + 1176 rows for two extras from
   the 48-SKU catalogue), with its total mean and variance and log(e! / prod c_j!). The table
   depends only on the pool's weights, so it is cached (16 entries) across calls; rows are
   grouped by their variance (buckets a factor 4 apart) and sorted by mean within a bucket.
2. *Track paths*, level by level as arrays (mean, variance, log prior, the centre-of-pressure
   moments, two multiset hashes, the options taken), in the original option order. A path is
   dropped when no completion can fit -- exact tests: *undershoot*, even the heaviest label of
   every remaining track and E of the heaviest pool unit stay below |dW| by more than z_prune sd
   (sd with the largest variance they could add); *overshoot*, the mean is already above the
   largest total any completion can fit at (the upper root of (M - t)^2 = z^2 (B + v + k (M - m)
   + r M^2), k bounding every unit's variance per gram; used only while z_prune * relative_error
   < 1, when |M - t| - z sd(M) grows with M) -- and, for removals, when it uses more units of a
   SKU than the basket holds.
3. *Pairs*: per path and variance bucket, the window of table rows whose mean can land the
   total within z_prune (below: z sd at |dW|; above: the fixed point of d = z sd(|dW| + d); both
   with the bucket's largest variance, widened by 1e-7 (1 + |dW|) g) found by ``searchsorted``;
   the (path, row) pairs are expanded (in chunks of at most 2^21, ~100 bytes a pair) and each is
   tested exactly (|M - t| <= z_prune s) and scored, its sums taken in the order of a depth-first
   search (tracks in order, then extra units by weight). On the corpus below, the posteriors
   equal the former depth-first search's (commit ccb0a35, both with ``log_margin=inf``) within
   5e-14 relative, over 1.08 million explanations, with the same best paths.
4. *Merging*: pairs are grouped by their multiset of units -- a 64-bit hash (the sum over units
   of a fixed random odd word per SKU, wrapping), checked by a second independent one, so two
   different multisets are merged only if both collide (probability < pairs^2 2^-128) --
   log-sum-exp per group, and the best path per group (exact score ties: the first path in
   enumeration order, tracks' options in the order given then extra units by weight).
   Explanations whose posterior is below e^-log_margin (default 20.8: 9.2e-10, so every
   explanation above 1e-9 is listed) are not built as :class:`Explanation` objects: their mass
   stays in the normaliser, so the posteriors listed are exact, and the unlisted total is at most
   ``residual`` e^-log_margin (5e-8 in the heaviest recorded call). ``log_margin=inf`` lists
   every explanation. :class:`SearchStats` counts paths, pairs, leaves and groups.

Cost: the pairs are about the leaves that fit plus the windows' slack (up to 2.8 * 10^4 with 8
SKU candidates per track: two tracks of 25 labels and two extras from 48 SKUs, or three tracks and
one extra), so the numpy part takes a few ms; building the listed explanations (up to ~4000 above
1e-9 on the corpus, ~1.5 us each) is the rest. On 1395 recorded calls of the k=8 evaluation (best of
two, interleaved, on a shared 2-core machine at load 7-9) a call takes median 0.77 ms, p99 12 ms,
max 16 ms, against 0.88 / 137 / 171 ms for the depth-first search it replaces. Weight-only changes
with four extra units are the expensive shape: their table (2.5 * 10^5 rows from 48 SKUs) takes
~0.1 s to build on the first such call of a process, and a flat posterior over a 2.5 kg change
lists ~25 000 explanations above 1e-9 (~0.17 s; the former search took 0.5 s).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Explanation", "Option", "PoolItem", "SearchStats", "explain", "log_normal"]

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)
_CHUNK = 1 << 21      # (path, extras) pairs expanded at once: bounds the memory (~100 B a pair)
_TABLE_CACHE = 16     # extras tables kept (keyed by the pool's weights and the allowed counts)
_VAR_BUCKET = 4.0     # variance buckets of the extras table, this factor apart
_NAMES_MEMO = 1 << 15  # extras rows remembered by name per table (cleared beyond)


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
class SearchStats:
    """Counters of one :func:`explain` call (pass an instance as ``stats=`` to fill it).

    nodes : track labels tried on partial paths plus (path, extras) pairs tested.
    paths : complete track paths left after the exact prunes.
    pairs : (path, extras row) pairs tested exactly (the windows' contents).
    leaves : pairs that fit within ``z_prune`` (scored explanation paths).
    groups : distinct multisets among the leaves (explanations before ``log_margin``).
    residual : explanations with a posterior below e^-log_margin: in the normaliser, not listed.
    """

    nodes: int = 0
    leaves: int = 0
    residual: int = 0
    paths: int = 0
    pairs: int = 0
    groups: int = 0


# -- the extras table ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Table:
    """Every allowed multiset of extra units, as rows. idx: (rows, E) indices into the sorted pool,
    ascending, padded with P (a zero unit); rows grouped by variance bucket, sorted by mean within
    one. lex: each row's rank in depth-first enumeration order (a multiset before its extensions)."""

    idx: np.ndarray
    e: np.ndarray
    mult: np.ndarray
    lex: np.ndarray
    mean: np.ndarray
    buckets: tuple[tuple[int, int, float], ...]   # (first row, end row, largest variance)
    n_lex: int
    names: dict   # {pool's SKU names: {row: (extras, their SKUs)}}: filled by extras(), bounded

    def extras(self, rows: np.ndarray, pool_names: tuple[str, ...]) -> dict[int, tuple]:
        """Per row number: its extra units ((sku, n), ...) sorted, and their SKUs, for the pool
        named ``pool_names`` (in the table's order); remembered for the last pool seen."""
        memo = self.names.get(pool_names)
        if memo is None or len(memo) > _NAMES_MEMO:
            memo = {}
            self.names.clear()   # another thread's memo, if any, lives on as its own dict
            self.names[pool_names] = memo
        out = {}
        for q in rows.tolist():
            got = memo.get(q)
            if got is None:
                units: dict[str, int] = {}
                for j in self.idx[q, :self.e[q]].tolist():
                    units[pool_names[j]] = units.get(pool_names[j], 0) + 1
                got = memo[q] = (tuple(sorted(units.items())), units.keys())
            out[q] = got
        return out


_tables: OrderedDict[tuple, _Table] = OrderedDict()
_tables_lock = threading.Lock()


def _multisets(n_pool: int, most: int) -> list[np.ndarray]:
    """Per size e = 0..most, every sorted e-tuple of indices 0..n_pool-1 (with repetition)."""
    out = [np.zeros((1, 0), dtype=np.int32)]
    for _ in range(most):
        prev = out[-1]
        last = prev[:, -1] if prev.shape[1] else np.zeros(1, dtype=np.int32)
        reps = n_pool - last
        total = int(reps.sum())
        parent = np.repeat(np.arange(len(prev)), reps)
        first = np.cumsum(reps) - reps
        new = last[parent] + (np.arange(total) - first[parent])
        out.append(np.concatenate([prev[parent], new[:, None].astype(np.int32)], axis=1))
    return out


def _log_multinomial_row(row: tuple[int, ...]) -> float:
    """log(e! / prod c_j!) for one sorted multiset, evaluated as the former depth-first search did."""
    if len(row) < 2:
        return 0.0
    if len(row) == 2:
        return _LOG_2 if row[0] != row[1] else 0.0
    counts: dict[int, int] = {}
    for j in row:
        counts[j] = counts.get(j, 0) + 1
    return math.lgamma(len(row) + 1) - sum(math.lgamma(c + 1) for c in counts.values())


def _preorder_rank(idx: np.ndarray, e: np.ndarray, n_pool: int) -> np.ndarray:
    """Each row's position in the depth-first enumeration of all multisets of 0..most units (a
    multiset before its extensions, then by index): a child at depth i with index j comes
    1 + (the subtrees of its earlier siblings) after its parent; a depth-i subtree rooted at
    index j' holds C(n_pool - j' + most - i, most - i) multisets."""
    most = idx.shape[1]
    rank = np.zeros(len(idx), dtype=np.int64)
    prev = np.zeros(len(idx), dtype=np.int64)
    for i in range(1, most + 1):
        size = np.array([math.comb(n_pool - j + most - i, most - i) for j in range(n_pool)] + [0], dtype=np.int64)
        before = np.concatenate([[0], np.cumsum(size)])          # subtrees of indices < j
        j = idx[:, i - 1].astype(np.int64)
        here = e >= i
        rank += np.where(here, 1 + before[np.minimum(j, n_pool)] - before[prev], 0)
        prev = np.where(here, j, prev)
    return rank


def _multinomial_terms(idx: np.ndarray, e: np.ndarray, n_pool: int) -> np.ndarray:
    """log(e! / prod c_j!) per row: one Python evaluation per pattern of repeated neighbours."""
    most = idx.shape[1]
    if most < 2 or not len(idx):
        return np.zeros(len(idx))
    code = e.astype(np.int64)
    for c in range(1, most):
        code = code * 2 + ((idx[:, c] == idx[:, c - 1]) & (idx[:, c] != n_pool))
    vals = np.zeros(int(code.max()) + 1)
    for k in np.flatnonzero(np.bincount(code)).tolist():
        flags = [(k >> (most - 1 - c)) & 1 for c in range(1, most)]
        n_units = k >> (most - 1)
        row = [0]
        for c in range(1, n_units):
            row.append(row[-1] + (0 if flags[c - 1] else 1))
        vals[k] = _log_multinomial_row(tuple(row[:n_units]))
    return vals[code]


def _build_table(pm: tuple[float, ...], pv: tuple[float, ...], allowed: tuple[bool, ...]) -> _Table:
    n_pool, most = len(pm), len(allowed) - 1
    sets = _multisets(n_pool, most) if n_pool else [np.zeros((1, 0), dtype=np.int32)]
    rows, es = [], []
    for e, s in enumerate(sets):
        if allowed[e]:
            pad = np.full((len(s), most), n_pool, dtype=np.int32)
            pad[:, :e] = s
            rows.append(pad)
            es.append(np.full(len(s), e, dtype=np.int8))
    idx = np.concatenate(rows) if rows else np.zeros((0, most), dtype=np.int32)
    e_arr = np.concatenate(es) if es else np.zeros(0, dtype=np.int8)
    pm_x = np.append(np.asarray(pm, dtype=float), 0.0)
    pv_x = np.append(np.asarray(pv, dtype=float), 0.0)
    mean = pm_x[idx].sum(axis=1) if most else np.zeros(len(idx))
    var = pv_x[idx].sum(axis=1) if most else np.zeros(len(idx))
    # variance buckets (0, 1], (1, 4], (4, 16], ... g^2, each sorted by mean
    bucket = np.where(var > 1.0, np.ceil(np.log(np.maximum(var, 1.0)) / math.log(_VAR_BUCKET) - 1e-12), 0.0)
    order = np.argsort(mean, kind="stable")
    order = order[np.argsort(bucket[order].astype(np.int16), kind="stable")]
    idx, e_arr, mean, var, bucket = idx[order], e_arr[order], mean[order], var[order], bucket[order]
    lex = _preorder_rank(idx, e_arr, n_pool)
    mult = _multinomial_terms(idx, e_arr, n_pool)
    bounds = np.flatnonzero(np.diff(bucket)) + 1
    starts = np.concatenate([[0], bounds]).astype(int) if len(idx) else np.zeros(0, dtype=int)
    ends = np.concatenate([bounds, [len(idx)]]).astype(int) if len(idx) else np.zeros(0, dtype=int)
    buckets = tuple((int(a), int(b), float(var[a:b].max())) for a, b in zip(starts, ends))
    n_lex = math.comb(n_pool + most, most)  # every multiset of 0..most units: ranks lie below
    for a in (idx, e_arr, mult, lex, mean):
        a.setflags(write=False)
    return _Table(idx, e_arr, mult, lex, mean, buckets, n_lex, {})


def _table(pm: tuple[float, ...], pv: tuple[float, ...], allowed: tuple[bool, ...]) -> _Table:
    key = (pm, pv, allowed)
    with _tables_lock:
        tab = _tables.get(key)
        if tab is not None:
            _tables.move_to_end(key)
            return tab
    tab = _build_table(pm, pv, allowed)
    with _tables_lock:
        _tables[key] = tab
        while len(_tables) > _TABLE_CACHE:
            _tables.popitem(last=False)
    return tab


_hash_words = (np.random.default_rng(0x5EED_CA9E).integers(0, 2**63, size=(2, 256), dtype=np.int64).view(np.uint64)
               * np.uint64(2) + np.uint64(1))


def _words(n: int) -> np.ndarray:
    """Two fixed random 64-bit words per SKU number 0..n-1 (odd, deterministic), plus a zero word at n."""
    global _hash_words
    if n > _hash_words.shape[1]:
        extra = np.random.default_rng(n).integers(0, 2**63, size=(2, n), dtype=np.int64).view(np.uint64)
        _hash_words = np.concatenate([_hash_words, extra * np.uint64(2) + np.uint64(1)], axis=1)
    out = np.zeros((2, n + 1), dtype=np.uint64)
    out[:, :n] = _hash_words[:, :n]
    return out


# -- the search ----------------------------------------------------------------------------------

def _expand(lo: np.ndarray, hi: np.ndarray):
    """(path, row) index arrays of every row in [lo[i], hi[i]) of every path i, in chunks."""
    n = np.maximum(hi - lo, 0)
    nz = np.flatnonzero(n)
    if not len(nz):
        return
    n, lo = n[nz], lo[nz]
    cum = np.cumsum(n)
    start = 0
    while start < len(nz):
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + _CHUNK, side="right"))
        stop = max(stop, start + 1)
        cnt = n[start:stop]
        total = int(cnt.sum())
        rel = np.repeat(np.arange(start, stop), cnt)
        first = np.cumsum(cnt) - cnt
        rows = lo[rel] + (np.arange(total) - np.repeat(first, cnt))
        yield nz[rel], rows
        start = stop


@dataclass(frozen=True)
class _Problem:
    """One call's constants: target t = |dW| (g), base variance B (g^2), relative error squared r,
    z_prune, the centre of pressure, SKU numbers and the basket's limits per SKU number."""

    t: float
    B: float
    r: float
    z: float
    cop: tuple[float, float] | None
    cop_var: float
    skus: dict[str, int]
    words: np.ndarray                # (2, n_sku + 1) hash words; column n_sku (no SKU) is zero
    limit: np.ndarray | None         # (n_sku + 1,) most units per SKU number (removals), else None

    @property
    def z2(self) -> float:
        return self.z * self.z

    @property
    def mono(self) -> bool:
        """|M - t| - z sd(M) grows with M above t (the overshoot bounds hold)."""
        return self.r * self.z2 < 1.0


@dataclass
class _Paths:
    """Track paths as parallel arrays, one entry a path (see the module docstring, step 2)."""

    m: np.ndarray        # mean (g)
    v: np.ndarray        # unit variance (g^2)
    lp: np.ndarray       # log prior of the labels
    mk: np.ndarray       # mass at known floor places (g) and its moments along u and v
    mu: np.ndarray
    mv: np.ndarray
    h: np.ndarray        # (2, paths) multiset hashes
    known: np.ndarray    # the path has a unit (not only spurious labels)
    taken: np.ndarray    # (paths, levels) option index per level
    cnt: np.ndarray | None  # (paths, n_sku + 1) units per SKU number (removals only)


def _pool_arrays(prob: _Problem, pool: Sequence[PoolItem]) -> tuple[np.ndarray, ...]:
    """Per sorted pool unit, then the zero unit that pads the extras table: mean, variance, log
    prior, SKU number."""
    n_sku = len(prob.skus)
    return (np.array([p.mean_g for p in pool] + [0.0]), np.array([p.var_g2 for p in pool] + [0.0]),
            np.array([p.log_prior for p in pool] + [0.0]),
            np.array([prob.skus[p.sku] for p in pool] + [n_sku], dtype=np.int64))


def _track_paths(prob: _Problem, levels: Sequence[Sequence[Option]], pool: Sequence[PoolItem], most: int,
                 stats: SearchStats) -> _Paths | None:
    """Step 2: every label combination that some completion can still fit, in enumeration order."""
    t, B, r, z = prob.t, prob.B, prob.r, prob.z
    n_sku = len(prob.skus)
    # every unit's variance is at most k times its mean (inf: no such bound)
    k = 0.0
    for item in [o for lv in levels for o in lv] + list(pool):
        if item.var_g2 > 0:
            k = max(k, item.var_g2 / item.mean_g if item.mean_g > 0 else math.inf)
    use_upper = prob.mono and k != math.inf
    x_hi = most * max((p.mean_g for p in pool), default=0.0)
    x_var = most * max((p.var_g2 for p in pool), default=0.0)
    # what the levels below can add at most: their heaviest labels and largest variances
    s_hi = [0.0] * (len(levels) + 1)
    s_var = [0.0] * (len(levels) + 1)
    for lv in range(len(levels) - 1, -1, -1):
        s_hi[lv] = s_hi[lv + 1] + max(o.mean_g for o in levels[lv])
        s_var[lv] = s_var[lv + 1] + max(o.var_g2 for o in levels[lv])

    one = np.zeros(1)
    P = _Paths(one, one, one, one, one, one, np.zeros((2, 1), dtype=np.uint64), np.zeros(1, dtype=bool),
               np.zeros((1, 0), dtype=np.int32),
               np.zeros((1, n_sku + 1), dtype=np.int64) if prob.limit is not None else None)
    for lv, opts in enumerate(levels):
        n_opt = len(opts)
        om = np.array([o.mean_g for o in opts])
        ov = np.array([o.var_g2 for o in opts])
        olp = np.array([o.log_prior for o in opts])
        osk = np.array([prob.skus[o.sku] if o.sku is not None else n_sku for o in opts], dtype=np.int64)
        on = np.array([o.n if o.sku is not None else 0 for o in opts], dtype=np.int64)
        placed = np.array([o.sku is not None and o.pos is not None and prob.cop is not None for o in opts])
        opu = np.array([o.pos[0] if o.pos is not None else 0.0 for o in opts])
        opv = np.array([o.pos[1] if o.pos is not None else 0.0 for o in opts])
        # every (path, option), parent-major: the enumeration order
        stats.nodes += len(P.m) * n_opt
        par = np.repeat(np.arange(len(P.m)), n_opt)
        opt = np.tile(np.arange(n_opt), len(P.m))
        m2 = P.m[par] + om[opt]
        v2 = P.v[par] + ov[opt]
        keep = np.ones(len(par), dtype=bool)
        if P.cnt is not None:
            keep &= P.cnt[par, osk[opt]] + on[opt] <= prob.limit[osk[opt]]
        if use_upper:
            keep &= m2 <= _upper(prob, k, m2, v2)                          # overshoots
        m_hi = m2 + (s_hi[lv + 1] + x_hi)
        keep &= ~(t - m_hi > z * np.sqrt(B + (v2 + (s_var[lv + 1] + x_var)) + r * m_hi * m_hi))  # undershoots
        sel = np.flatnonzero(keep)
        par, opt = par[sel], opt[sel]
        here = placed[opt]
        om_s = om[opt]
        cnt = None
        if P.cnt is not None:
            cnt = P.cnt[par]
            cnt[np.arange(len(par)), osk[opt]] += on[opt]
        P = _Paths(m2[sel], v2[sel], P.lp[par] + olp[opt],
                   np.where(here, P.mk[par] + om_s, P.mk[par]),
                   np.where(here, P.mu[par] + om_s * opu[opt], P.mu[par]),
                   np.where(here, P.mv[par] + om_s * opv[opt], P.mv[par]),
                   P.h[:, par] + prob.words[:, osk[opt]] * on[opt].astype(np.uint64),
                   P.known[par] | (osk[opt] < n_sku),
                   np.concatenate([P.taken[par], opt[:, None].astype(np.int32)], axis=1), cnt)
        if not len(P.m):
            return None
    stats.paths = len(P.m)
    return P


def _upper(prob: _Problem, k: float, m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The largest total mean that any completion of a node (mean m, unit variance v) can reach and
    still fit: the upper root of (M - t)^2 = z^2 (B + v + k (M - m) + r M^2), at least t."""
    t, z2 = prob.t, prob.z2
    a = 1.0 - z2 * prob.r
    b = 2.0 * t + z2 * k
    c = t * t - z2 * (prob.B + v - k * m)
    disc = b * b - 4.0 * a * c
    root = (b + np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
    return np.where(disc < 0, t, np.maximum(t, root) + 1e-9 * (1.0 + t))


def _leaves(prob: _Problem, P: _Paths, tab: _Table, pool_arr: tuple[np.ndarray, ...], xlp: np.ndarray,
            stats: SearchStats) -> dict[str, np.ndarray] | None:
    """Step 3: every (path, extras row) pair that fits, with its mean, variance and log score."""
    t, B, r, z, z2 = prob.t, prob.B, prob.r, prob.z, prob.z2
    zr = z2 * r
    rt2 = r * t * t
    slack = 1e-7 * (1.0 + t)
    parts: list[tuple[np.ndarray, ...]] = []
    for b0, b1, bvar in tab.buckets:
        # the rows whose mean can land the total within z_prune, with this bucket's largest variance
        means = tab.mean[b0:b1]
        c = B + P.v + bvar
        lo = np.searchsorted(means, t - P.m - z * np.sqrt(c + rt2) - slack, side="left")
        if prob.mono:
            d_hi = (zr * t + np.sqrt(zr * zr * t * t + (1.0 - zr) * z2 * (c + rt2))) / (1.0 - zr)
            hi = np.searchsorted(means, t - P.m + d_hi + slack, side="right")
        else:
            hi = np.full(len(P.m), b1 - b0)
        for p, row in _expand(lo, hi):
            stats.pairs += len(p)
            got = _fit_and_score(prob, P, tab, pool_arr, xlp, p, row + b0)
            if got is not None:
                parts.append(got)
    stats.nodes += stats.pairs
    if not parts:
        return None
    keys = ("p", "row", "m", "var", "score")
    leaves = {key: np.concatenate([part[i] for part in parts]) for i, key in enumerate(keys)}
    stats.leaves = len(leaves["p"])
    return leaves


def _fit_and_score(prob: _Problem, P: _Paths, tab: _Table, pool_arr: tuple[np.ndarray, ...], xlp: np.ndarray,
                   p: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """The exact test and the log score of pairs (p, row); sums in depth-first order (the path's,
    then the extra units by weight), as the reference enumeration adds them."""
    pm, pv, plp, psku = pool_arr
    t, B, r = prob.t, prob.B, prob.r
    ids = tab.idx[row]
    n_col = ids.shape[1]
    mm, vv, ll = P.m[p], P.v[p], P.lp[p]
    for col in range(n_col):
        j = ids[:, col]
        mm = mm + pm[j]
        vv = vv + pv[j]
        ll = ll + plp[j]
    var = B + vv + r * mm * mm
    d = t - mm
    ok = d * d <= prob.z2 * var
    ok &= (tab.e[row] > 0) | P.known[p]              # some unit: spurious labels alone explain nothing
    if P.cnt is not None:
        for col in range(n_col):                     # no more units of a SKU than the basket holds
            s = psku[ids[:, col]]
            same = np.zeros(len(p), dtype=np.int64)
            for col2 in range(n_col):
                same += psku[ids[:, col2]] == s
            ok &= P.cnt[p, s] + same <= prob.limit[s]
    sel = np.flatnonzero(ok)
    if not len(sel):
        return None
    p, row, mm, var, d = p[sel], row[sel], mm[sel], var[sel], d[sel]
    ll = ll[sel] + xlp[tab.e[row]] + tab.mult[row]
    score = ll - 0.5 * (d * d / var + _LOG_2PI + np.log(var))
    if prob.cop is not None:
        # centre of pressure: known places by mass, the rest uniform over the floor
        unknown = np.maximum(mm - P.mk[p], 0.0)
        total = np.maximum(mm, 1e-9)
        s2 = prob.cop_var + (unknown / total) ** 2 / 12.0
        cu = prob.cop[0] - (P.mu[p] + 0.5 * unknown) / total
        cv = prob.cop[1] - (P.mv[p] + 0.5 * unknown) / total
        score = score - ((cu * cu + cv * cv) / (2.0 * s2) + _LOG_2PI + np.log(s2))
    return p, row, mm, var, score


def _merge(P: _Paths, tab: _Table, psku: np.ndarray, words: np.ndarray, leaves: dict[str, np.ndarray],
           stats: SearchStats) -> tuple[np.ndarray, np.ndarray]:
    """Step 4: per multiset of units, its log-sum-exp score and its best leaf (exact ties: the
    first in enumeration order)."""
    p, row, score = leaves["p"], leaves["row"], leaves["score"]
    ids = tab.idx[row]
    hx = P.h[:, p]
    for col in range(ids.shape[1]):
        hx = hx + words[:, psku[ids[:, col]]]
    order = np.argsort(hx[0])
    h0, h1 = hx[0][order], hx[1][order]
    if np.any((h0[1:] == h0[:-1]) & (h1[1:] != h1[:-1])):   # the first hash collided: use both
        order = np.lexsort((hx[1], hx[0]))
        h0, h1 = hx[0][order], hx[1][order]
    new = np.empty(len(order), dtype=bool)
    new[0] = True
    new[1:] = (h0[1:] != h0[:-1]) | (h1[1:] != h1[:-1])
    starts = np.flatnonzero(new)
    gid = np.cumsum(new) - 1
    s_sorted = score[order]
    gmax = np.maximum.reduceat(s_sorted, starts)
    g_log = gmax + np.log(np.add.reduceat(np.exp(s_sorted - gmax[gid]), starts))
    rank = (p.astype(np.int64) * tab.n_lex + tab.lex[row])[order]
    cand = np.where(s_sorted == gmax[gid], rank, np.iinfo(np.int64).max)
    best_rank = np.minimum.reduceat(cand, starts)
    stats.groups = len(starts)
    return g_log, order[np.flatnonzero(rank == best_rank[gid])]


def _listed(prob: _Problem, levels: Sequence[Sequence[Option]], pool: Sequence[PoolItem], P: _Paths, tab: _Table,
            leaves: dict[str, np.ndarray], g_log: np.ndarray, best: np.ndarray, outlier: Explanation,
            log_margin: float, stats: SearchStats) -> list[Explanation]:
    """The explanations with a posterior of at least e^-log_margin and the outlier, best first; the
    normaliser holds every explanation."""
    top = max(float(g_log.max()), outlier.log_score)
    total = float(np.exp(g_log - top).sum()) + math.exp(outlier.log_score - top)
    kept = np.flatnonzero(g_log >= top + math.log(total) - log_margin)
    stats.residual = len(g_log) - len(kept)
    outlier.prob = math.exp(outlier.log_score - top) / total
    probs = np.exp(g_log[kept] - top) / total
    by_prob = np.argsort(-probs, kind="stable")
    kept, probs = kept[by_prob], probs[by_prob]
    leaf = best[kept]
    k_path, k_row = leaves["p"][leaf], leaves["row"][leaf]
    k_mean = leaves["m"][leaf]
    k_z = (prob.t - k_mean) / np.sqrt(leaves["var"][leaf])
    # names: per distinct path and extras row, once
    paths: dict[int, tuple] = {}
    for q in np.unique(k_path).tolist():
        labels = tuple((levels[lv][o].sku, levels[lv][o].n) for lv, o in enumerate(P.taken[q].tolist()))
        units: dict[str, int] = {}
        for sku, n in labels:
            if sku is not None:
                units[sku] = units.get(sku, 0) + n
        paths[q] = (labels, units, tuple(sorted(units.items())), units.keys())
    rows = tab.extras(np.unique(k_row), tuple(q.sku for q in pool))
    out = []
    append = out.append
    for q, w, g, s, mean, pr, zz in zip(k_path.tolist(), k_row.tolist(), g_log[kept].tolist(),
                                        leaves["score"][leaf].tolist(), k_mean.tolist(), probs.tolist(), k_z.tolist()):
        labels, units, counts, in_path = paths[q]
        extras, in_extras = rows[w]
        if extras and in_path.isdisjoint(in_extras):
            counts = tuple(sorted(counts + extras))
        elif extras:
            merged = units.copy()
            for sku, n in extras:
                merged[sku] = merged.get(sku, 0) + n
            counts = tuple(sorted(merged.items()))
        append(Explanation(counts, g, labels, extras, s, mean, pr, False, zz))
    # equal posteriors (symmetric labels): each run ordered by counts, as documented
    eq = probs[1:] == probs[:-1]
    for a in np.flatnonzero(eq & np.concatenate(([True], ~eq[:-1]))).tolist() if len(eq) else ():
        b = a + 1
        while b < len(out) and out[b].prob == out[a].prob:
            b += 1
        out[a:b] = sorted(out[a:b], key=lambda e: e.counts)
    # the outlier: after every explanation more likely (its counts () come first among equals)
    out.insert(int(np.searchsorted(-probs, -outlier.prob, side="left")), outlier)
    return out


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
    log_margin: float = 20.8,
    stats: SearchStats | None = None,
) -> list[Explanation]:
    """All explanations of ``|delta_g|`` with their posterior ``prob``, best first; the outlier
    explanation is included (``outlier=True``, ``counts=()``).

    levels : per track, its label options (see :class:`Option`).
    pool : SKUs that may appear as extra units; ``extra_log_prior[e]`` is the log prior of e
        extra units (length = most extras + 1; ``-inf`` at 0 forces at least one).
    available : per SKU, the most units an explanation may use (removals: the basket); None: no limit.
    cop, cop_std : the change's centre of pressure on the normalised floor and the standard
        deviation of its prediction per axis; ``cop=None`` or ``cop_std=0`` leaves it out.
    log_margin : explanations with a posterior below e^-log_margin are left out of the list (their
        mass stays in the normaliser); the default 20.8 lists every one above 1e-9 (math.inf: all).
        Lowering it saves building explanations (~1.5 us each), not search time.
    """
    if not (sigma_g >= 0 and math.isfinite(sigma_g)):
        raise ValueError(f"sigma_g = {sigma_g!r}: expected a finite standard error >= 0 grams")
    if not extra_log_prior:
        raise ValueError("extra_log_prior must list at least the log prior of 0 extra units")
    if not log_margin > 0:
        raise ValueError(f"log_margin = {log_margin!r}: expected > 0 nats (math.inf: list every explanation)")
    stats = stats if stats is not None else SearchStats()
    pool = sorted(pool, key=lambda p: (p.mean_g, p.sku))
    outlier = Explanation((), outlier_log_prior - math.log(outlier_range_g), outlier=True, prob=1.0)
    most = len(extra_log_prior) - 1 if pool else 0
    allowed = tuple(x > -math.inf for x in extra_log_prior[:most + 1])
    if any(not lv for lv in levels) or not any(allowed):
        return [outlier]

    # SKU numbers, for the multiset hashes and the basket's limits
    skus: dict[str, int] = {}
    for lv in levels:
        for o in lv:
            if o.sku is not None:
                skus.setdefault(o.sku, len(skus))
    for q in pool:
        skus.setdefault(q.sku, len(skus))
    limit = None
    if available is not None:
        limit = np.array([available.get(s, 0) for s in skus] + [1 << 30], dtype=np.int64)
    use_cop = cop is not None and cop_std > 0
    prob = _Problem(abs(delta_g), max(sigma_g * sigma_g, 1e-6), relative_error * relative_error, z_prune,
                    (float(cop[0]), float(cop[1])) if use_cop else None, cop_std * cop_std, skus, _words(len(skus)),
                    limit)

    paths = _track_paths(prob, levels, pool, most, stats)                                   # step 2
    if paths is None:
        return [outlier]
    pool_arr = _pool_arrays(prob, pool)
    tab = _table(tuple(pool_arr[0][:-1].tolist()), tuple(pool_arr[1][:-1].tolist()), allowed)   # step 1
    xlp = np.array([x if x > -math.inf else 0.0 for x in extra_log_prior[:most + 1]])
    leaves = _leaves(prob, paths, tab, pool_arr, xlp, stats)                                # step 3
    if leaves is None:
        return [outlier]
    g_log, best = _merge(paths, tab, pool_arr[3], prob.words, leaves, stats)                # step 4
    return _listed(prob, levels, pool, paths, tab, leaves, g_log, best, outlier, log_margin, stats)
