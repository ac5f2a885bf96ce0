"""Fusion's explanation search (caper_edge.fusion.explain) on the simulator's 48-SKU catalogue.

Ours: depth-first search over tracks then extra units as multisets, pruned when the mean
overshoots |dW| by z_prune standard deviations, the last unit found by bisection. Peer, same run
and inputs: the brute-force enumeration a first implementation would write -- every multiset of
up to N catalogue units (``itertools.combinations_with_replacement``) or every combination of
track labels and extra units (``itertools.product``), each scored with the same likelihood, then
normalised. The notes say whether both rank the same best explanation.
"""

from __future__ import annotations

import itertools
import math

from caper_edge.fusion import explain
from caper_edge.fusion.explain import Option, PoolItem, log_normal

from .harness import Case

_REL = 0.004
_Z = 6.0
_OUTLIER = (math.log(0.002), 10000.0)


def _catalog():
    from caper_edge.sim.catalog import catalog

    return [(s.sku, s.weight_g, s.weight_std_g) for s in catalog()]


def _brute_unseen(delta: float, sigma: float, pool: list[PoolItem], max_units: int, r: float) -> tuple:
    """Every multiset of 1..max_units pool units; returns the best multiset."""
    scores: dict[tuple, float] = {}
    for n in range(1, max_units + 1):
        for combo in itertools.combinations_with_replacement(range(len(pool)), n):
            mean = sum(pool[j].mean_g for j in combo)
            var = sigma * sigma + sum(pool[j].var_g2 for j in combo) + (_REL * mean) ** 2
            if abs(mean - delta) > _Z * math.sqrt(var):
                continue
            counts: dict[str, int] = {}
            for j in combo:
                counts[pool[j].sku] = counts.get(pool[j].sku, 0) + 1
            orderings = math.lgamma(n + 1) - sum(math.lgamma(c + 1) for c in counts.values())
            lp = (n - 1) * math.log(r) + sum(pool[j].log_prior for j in combo) + orderings
            scores[tuple(sorted(counts.items()))] = lp + log_normal(delta, mean, var)
    return max(scores, key=scores.get) if scores else ()


def _brute_tracks(delta: float, sigma: float, levels: list[list[Option]], pool: list[PoolItem], extra: list[float]):
    """Every combination of track labels and of up to len(extra)-1 extra units."""
    best, best_score = (), -math.inf
    for labels in itertools.product(*levels):
        for e in range(len(extra)):
            for combo in itertools.combinations_with_replacement(range(len(pool)), e):
                mean = sum(o.mean_g for o in labels) + sum(pool[j].mean_g for j in combo)
                var = sigma * sigma + sum(o.var_g2 for o in labels) + sum(pool[j].var_g2 for j in combo) + (_REL * mean) ** 2
                counts: dict[str, int] = {}
                for o in labels:
                    if o.sku is not None:
                        counts[o.sku] = counts.get(o.sku, 0) + o.n
                for j in combo:
                    counts[pool[j].sku] = counts.get(pool[j].sku, 0) + 1
                if not counts:
                    continue
                score = sum(o.log_prior for o in labels) + extra[e] + sum(pool[j].log_prior for j in combo)
                score += log_normal(delta, mean, var)
                if score > best_score:
                    best, best_score = tuple(sorted(counts.items())), score
    return best


def cases(quick: bool) -> list[Case]:
    cat = _catalog()
    pool = [PoolItem(s, math.log(1 / len(cat)), w, sd * sd) for s, w, sd in cat]
    by = {s: (w, sd) for s, w, sd in cat}
    out = []

    # 1. A rise nobody saw: 1070 g (a 1 kg bag and a chocolate bar?) from the whole catalogue.
    max_units = 3 if quick else 4
    r = 0.03
    extra = [-math.inf] + [(e - 1) * math.log(r) for e in range(1, max_units + 1)]

    def ours_unseen():
        return explain(1070.0, 1.5, levels=[], pool=pool, extra_log_prior=extra, relative_error=_REL, z_prune=_Z,
                       outlier_log_prior=_OUTLIER[0], outlier_range_g=_OUTLIER[1])

    same = ours_unseen()[0].counts == _brute_unseen(1070.0, 1.5, pool, max_units, r)
    out.append(Case("fusion", f"explain unseen rise, 48 SKUs, <= {max_units} units", ours_unseen,
                    peer=lambda: _brute_unseen(1070.0, 1.5, pool, max_units, r), peer_name="brute-force multisets",
                    items=1, item_unit="explanations", notes=f"same best explanation: {same}"))

    # 2. Two tracks placed together (top-3 each plus look-alikes), up to 2 extra units.
    def options(cands):
        opts = [Option(None, 0, math.log(0.05), 0.0, 0.0)]
        for sku, p in cands:
            w, sd = by[sku]
            for n in (1, 2):
                opts.append(Option(sku, n, math.log(0.95 * p) + (n - 1) * math.log(r), n * w, n * sd * sd))
        return opts

    levels = [options([("SKU-0001", 0.7), ("SKU-0002", 0.2), ("SKU-0003", 0.05)]),
              options([("SKU-0031", 0.8), ("SKU-0032", 0.1), ("SKU-0033", 0.05)])]
    extras = [0.0, math.log(0.1)] if quick else [0.0, math.log(0.1), 2 * math.log(0.1)]
    delta = by["SKU-0001"][0] + by["SKU-0031"][0] + 3.0

    def ours_tracks():
        return explain(delta, 1.5, levels=levels, pool=pool, extra_log_prior=extras, relative_error=_REL, z_prune=_Z,
                       outlier_log_prior=_OUTLIER[0], outlier_range_g=_OUTLIER[1])

    same = ours_tracks()[0].counts == _brute_tracks(delta, 1.5, levels, pool, extras)
    out.append(Case("fusion", f"explain two tracks + <= {len(extras) - 1} extra units", ours_tracks,
                    peer=lambda: _brute_tracks(delta, 1.5, levels, pool, extras), peer_name="brute-force product",
                    items=1, item_unit="explanations", notes=f"same best explanation: {same}"))
    return out
