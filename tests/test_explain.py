"""caper_edge.fusion.explain against an independent brute-force enumeration.

The reference below scores every combination -- itertools.product over the tracks' labels times
every multiset of extra units (combinations_with_replacement) -- with the formula of the module
docstring, merges equal multisets and normalises; nothing is pruned. The search must give the
same explanations and posteriors: exactly (to rounding) with ``log_margin=inf``, within its
documented bound with the default margin.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caper_edge.fusion.explain import Option, PoolItem, SearchStats, explain

_L2PI = math.log(2 * math.pi)


def _lognorm(x, mu, var):
    return -0.5 * ((x - mu) ** 2 / var + _L2PI + math.log(var))


def _brute(delta, sigma, levels, pool, extra, rel, z, out_lp, out_range, available=None, cop=None, cop_std=0.0):
    """{counts: (prob, best score, (tracks, extras) of the best path)}, outlier under ()."""
    t = abs(delta)
    base = max(sigma * sigma, 1e-6)
    use_cop = cop is not None and cop_std > 0
    scores: dict[tuple, list[float]] = {}
    best: dict[tuple, tuple[float, tuple]] = {}
    pool = sorted(pool, key=lambda p: (p.mean_g, p.sku))
    for labels in itertools.product(*levels):
        for e in range(len(extra)):
            if extra[e] == -math.inf or (e and not pool):
                continue
            for combo in itertools.combinations_with_replacement(range(len(pool)), e):
                counts: dict[str, int] = {}
                for o in labels:
                    if o.sku is not None:
                        counts[o.sku] = counts.get(o.sku, 0) + o.n
                ex: dict[str, int] = {}
                for j in combo:
                    counts[pool[j].sku] = counts.get(pool[j].sku, 0) + 1
                    ex[pool[j].sku] = ex.get(pool[j].sku, 0) + 1
                if not counts:
                    continue
                if available is not None and any(n > available.get(s, 0) for s, n in counts.items()):
                    continue
                mean = sum(o.mean_g for o in labels) + sum(pool[j].mean_g for j in combo)
                var = base + sum(o.var_g2 for o in labels) + sum(pool[j].var_g2 for j in combo) + (rel * mean) ** 2
                if abs(mean - t) > z * math.sqrt(var):
                    continue
                mult = math.lgamma(e + 1) - sum(math.lgamma(c + 1) for c in
                                                 [combo.count(j) for j in set(combo)])
                score = (sum(o.log_prior for o in labels) + extra[e] + sum(pool[j].log_prior for j in combo) + mult
                         + _lognorm(t, mean, var))
                if use_cop:
                    known = [(o.mean_g, o.pos) for o in labels if o.sku is not None and o.pos is not None]
                    mk = sum(m for m, _ in known)
                    unknown = max(mean - mk, 0.0)
                    s2 = cop_std ** 2 + (unknown / mean) ** 2 / 12
                    for ax in (0, 1):
                        score += _lognorm(cop[ax], (sum(m * p[ax] for m, p in known) + 0.5 * unknown) / mean, s2)
                key = tuple(sorted(counts.items()))
                scores.setdefault(key, []).append(score)
                path = (tuple((o.sku, o.n) for o in labels), tuple(sorted(ex.items())))
                if key not in best or score > best[key][0]:
                    best[key] = (score, path)
    logs = {k: max(v) + math.log(sum(math.exp(s - max(v)) for s in v)) for k, v in scores.items()}
    logs[()] = out_lp - math.log(out_range)
    top = max(logs.values())
    z_tot = sum(math.exp(v - top) for v in logs.values())
    return {k: (math.exp(v - top) / z_tot, best.get(k, (None, None))) for k, v in logs.items()}, scores


@st.composite
def _cases(draw):
    n_sku = draw(st.integers(3, 7))
    skus = [f"S{i}" for i in range(n_sku)]
    w = {s: draw(st.floats(40.0, 700.0)) for s in skus}
    # weight spreads up to 60 g: heavy enough that adding a unit can widen the window by more
    # than its mean (the case a plain "overshoot -> stop" rule gets wrong)
    sd = {s: draw(st.floats(0.5, 60.0)) for s in skus}
    use_cop = draw(st.booleans())
    levels = []
    for _ in range(draw(st.integers(0, 2))):
        pos = (draw(st.floats(0, 1)), draw(st.floats(0, 1))) if use_cop and draw(st.booleans()) else None
        opts = [Option(None, 0, math.log(draw(st.floats(0.01, 0.5))), 0.0, 0.0)]
        for s in draw(st.lists(st.sampled_from(skus), min_size=1, max_size=3, unique=True)):
            for n in range(1, draw(st.integers(1, 3)) + 1):
                opts.append(Option(s, n, draw(st.floats(-8.0, 0.0)), n * w[s], n * sd[s] ** 2, pos))
        levels.append(opts)
    pool_skus = draw(st.lists(st.sampled_from(skus), min_size=0, max_size=n_sku, unique=True))
    pool = [PoolItem(s, draw(st.floats(-6.0, 0.0)), w[s], sd[s] ** 2) for s in pool_skus]
    n_extra = draw(st.integers(0, 3 if levels else 4))
    extra = [(-math.inf if not levels or draw(st.booleans()) else 0.0)]
    extra += [draw(st.sampled_from([-math.inf, -1.0, -2.3, -4.6])) for _ in range(n_extra)]
    available = None
    if draw(st.booleans()):  # a removal: the basket bounds every SKU's count
        available = {s: draw(st.integers(0, 3)) for s in skus}
    # a target near some combination, so that something fits
    units = draw(st.lists(st.sampled_from(skus), min_size=1, max_size=3))
    delta = sum(w[s] for s in units) + draw(st.floats(-30.0, 30.0))
    if draw(st.booleans()):
        delta = -delta
    cop = (draw(st.floats(0, 1)), draw(st.floats(0, 1))) if use_cop else None
    return dict(delta=delta, sigma=draw(st.floats(0.0, 6.0)), levels=levels, pool=pool, extra=extra,
                rel=draw(st.sampled_from([0.0, 0.004, 0.03])), z=draw(st.sampled_from([3.0, 6.0])),
                available=available, cop=cop, cop_std=draw(st.sampled_from([0.0, 0.05, 0.2])))


def _run(c, **kw):
    return explain(c["delta"], c["sigma"], levels=c["levels"], pool=c["pool"], extra_log_prior=c["extra"],
                   relative_error=c["rel"], z_prune=c["z"], outlier_log_prior=math.log(0.01), outlier_range_g=5000.0,
                   available=c["available"], cop=c["cop"], cop_std=c["cop_std"], **kw)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(_cases())
def test_search_equals_brute_force(c):
    ref, leaf_scores = _brute(c["delta"], c["sigma"], c["levels"], c["pool"], c["extra"], c["rel"], c["z"],
                              math.log(0.01), 5000.0, c["available"], c["cop"], c["cop_std"])
    exact = _run(c, log_margin=math.inf)
    got = {e.counts: e for e in exact}
    assert set(got) == set(ref)
    for key, (p, (best_score, path)) in ref.items():
        assert got[key].prob == pytest.approx(p, abs=1e-12, rel=1e-9)
        if key == ():
            assert got[key].outlier
            continue
        # the best path names the tracks; compare it where it is unique
        others = sorted(leaf_scores[key], reverse=True)
        if len(others) == 1 or others[0] - others[1] > 1e-9:
            assert (got[key].tracks, got[key].extras) == path
            assert got[key].best_log == pytest.approx(best_score, abs=1e-9)
    # the default score bound: the same best explanation, posteriors within e^-25
    stats = SearchStats()
    bounded = _run(c, stats=stats)
    assert stats.dropped_log_mass < max(e.log_score for e in bounded) - 25.0 or stats.bounded == 0
    assert bounded[0].counts == exact[0].counts
    got_b = {e.counts: e.prob for e in bounded}
    for e in exact:
        assert abs(got_b.get(e.counts, 0.0) - e.prob) <= 1e-9


def _catalogue():
    from caper_edge.sim.catalog import catalog

    return [(s.sku, s.weight_g, s.weight_std_g) for s in catalog()]


def test_heavy_case_shaped_like_eight_candidates_per_track():
    """Two tracks with 8 candidates each, their look-alikes, 3 counts (25 labels a track), two
    extra units from the 48-SKU catalogue, 1.8 kg: the shape that took 0.2-0.4 s before. The
    search must stay far below the full enumeration (25 * 25 * 1225 leaves)."""
    cat = _catalogue()
    assert len(cat) >= 40
    by = {s: (w, sd) for s, w, sd in cat}
    order = sorted(by)
    levels = []
    for k, start in enumerate((3, 17)):
        labels = order[start:start + 8]
        opts = [Option(None, 0, math.log(0.05), 0.0, 0.0)]
        for r, s in enumerate(labels):
            for n in (1, 2, 3):
                lp = math.log(0.95) + math.log(0.6 if r == 0 else 0.4 / 7) + math.log(0.97 * 0.03 ** (n - 1))
                opts.append(Option(s, n, lp, n * by[s][0], n * by[s][1] ** 2, (0.3 + 0.4 * k, 0.5)))
        levels.append(opts)
    pool = [PoolItem(s, math.log(1 / len(cat)), w, sd * sd) for s, w, sd in cat]
    target = levels[0][1].mean_g + levels[1][1].mean_g + 3.0
    stats = SearchStats()
    exps = explain(target, 2.0, levels=levels, pool=pool, extra_log_prior=[0.0, math.log(0.1), 2 * math.log(0.1)],
                   relative_error=0.004, z_prune=6.0, outlier_log_prior=math.log(0.002), outlier_range_g=10000.0,
                   cop=(0.5, 0.5), cop_std=0.08, stats=stats)
    full = 25 * 25 * (1 + len(pool) + len(pool) * (len(pool) + 1) // 2)
    assert stats.nodes < full // 5
    assert stats.leaves < full // 20
    # the top-ranked labels explain it; kept explanations are far fewer than the leaves scored
    assert dict(exps[0].counts) == {levels[0][1].sku: 1, levels[1][1].sku: 1}
    assert len(exps) <= stats.leaves
    assert sum(e.prob for e in exps) == pytest.approx(1.0, abs=1e-9)


def test_log_margin_is_validated():
    with pytest.raises(ValueError, match="log_margin"):
        explain(100.0, 1.0, levels=[], pool=[], extra_log_prior=[0.0], relative_error=0.0, z_prune=6.0,
                outlier_log_prior=-5.0, outlier_range_g=1000.0, log_margin=0.0)
