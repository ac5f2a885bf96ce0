"""caper_edge.fusion.explain against an independent brute-force enumeration.

The reference below scores every combination -- itertools.product over the tracks' labels times
every multiset of extra units (combinations_with_replacement) -- with the formula of the module
docstring, merges equal multisets and normalises; nothing is pruned. The search must give the
same explanations and posteriors: exactly (to rounding) with ``log_margin=inf``; with the default
margin, the same posteriors for the explanations it lists and only explanations below 1e-9 left out.
"""

from __future__ import annotations

import importlib
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
def _cases(draw, max_tracks=2, max_extra=3, max_labels=3):
    n_sku = draw(st.integers(3, 7))
    skus = [f"S{i}" for i in range(n_sku)]
    w = {s: draw(st.floats(40.0, 700.0)) for s in skus}
    # weight spreads up to 60 g: heavy enough that adding a unit can widen the window by more
    # than its mean (the case a plain "overshoot -> stop" rule gets wrong)
    sd = {s: draw(st.floats(0.5, 60.0)) for s in skus}
    use_cop = draw(st.booleans())
    levels = []
    for _ in range(draw(st.integers(0, max_tracks))):
        pos = (draw(st.floats(0, 1)), draw(st.floats(0, 1))) if use_cop and draw(st.booleans()) else None
        opts = [Option(None, 0, math.log(draw(st.floats(0.01, 0.5))), 0.0, 0.0)]
        for s in draw(st.lists(st.sampled_from(skus), min_size=1, max_size=max_labels, unique=True)):
            for n in range(1, draw(st.integers(1, 3)) + 1):
                opts.append(Option(s, n, draw(st.floats(-8.0, 0.0)), n * w[s], n * sd[s] ** 2, pos))
        levels.append(opts)
    pool_skus = draw(st.lists(st.sampled_from(skus), min_size=0, max_size=n_sku, unique=True))
    pool = [PoolItem(s, draw(st.floats(-6.0, 0.0)), w[s], sd[s] ** 2) for s in pool_skus]
    n_extra = draw(st.integers(0, max_extra if levels else max_extra + 1))
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


def _check_against_brute_force(c):
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
    # the default listing bound: the same best explanation; the listed posteriors are exact and
    # every explanation left out has a posterior below e^-log_margin (< 1e-9)
    stats = SearchStats()
    bounded = _run(c, stats=stats)
    assert bounded[0].counts == exact[0].counts
    assert (bounded[0].tracks, bounded[0].extras) == (exact[0].tracks, exact[0].extras)
    got_b = {e.counts: e.prob for e in bounded}
    for e in exact:
        if e.counts in got_b:
            assert got_b[e.counts] == pytest.approx(e.prob, abs=1e-15, rel=1e-9)
        else:
            assert e.prob < 1e-9
    assert stats.residual == len(exact) - len(bounded)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(_cases())
def test_search_equals_brute_force(c):
    _check_against_brute_force(c)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(_cases(max_tracks=3, max_extra=3, max_labels=2))
def test_three_tracks_and_three_extras_equal_brute_force(c):
    _check_against_brute_force(c)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(_cases())
def test_chunked_pair_expansion_gives_the_same_result(c):
    """The (path, extras) pairs are expanded in chunks of at most _CHUNK: tiny chunks change nothing."""
    ex = importlib.import_module("caper_edge.fusion.explain")  # the module (the package exports the function)
    whole = _run(c, log_margin=math.inf)
    saved = ex._CHUNK
    ex._CHUNK = 3
    try:
        chunked = _run(c, log_margin=math.inf)
    finally:
        ex._CHUNK = saved
    assert [(e.counts, e.tracks, e.extras, e.prob, e.best_log) for e in chunked] == \
        [(e.counts, e.tracks, e.extras, e.prob, e.best_log) for e in whole]


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
    # explanations below e^-log_margin are not listed; their mass is at most that each
    listed = sum(e.prob for e in exps)
    assert 1.0 - 1e-12 <= listed + stats.residual * math.exp(-20.8) and listed <= 1.0 + 1e-12
    assert stats.groups == len(exps) - 1 + stats.residual
    assert stats.leaves <= stats.pairs


def test_log_margin_is_validated():
    with pytest.raises(ValueError, match="log_margin"):
        explain(100.0, 1.0, levels=[], pool=[], extra_log_prior=[0.0], relative_error=0.0, z_prune=6.0,
                outlier_log_prior=-5.0, outlier_range_g=1000.0, log_margin=0.0)


def test_spurious_labels_alone_are_no_explanation():
    """A track labelled spurious with no extra unit explains nothing: only the outlier (and, with
    a pool, the extra unit) may account for the change, however small the change is."""
    spurious = [Option(None, 0, math.log(0.5), 0.0, 0.0)]
    only = explain(1.0, 1.0, levels=[spurious], pool=[], extra_log_prior=[0.0], relative_error=0.0, z_prune=6.0,
                   outlier_log_prior=math.log(0.01), outlier_range_g=1000.0, log_margin=math.inf)
    assert [(e.counts, e.outlier, e.prob) for e in only] == [((), True, 1.0)]
    pool = [PoolItem("A", math.log(0.5), 50.0, 1.0)]
    two = explain(50.0, 1.0, levels=[spurious], pool=pool, extra_log_prior=[0.0, math.log(0.1)], relative_error=0.0,
                  z_prune=6.0, outlier_log_prior=math.log(0.01), outlier_range_g=1000.0, log_margin=math.inf)
    assert [e.counts for e in two] == [(("A", 1),), ()]
    a = math.log(0.5) + math.log(0.1) + math.log(0.5) - 0.5 * (math.log(2 * math.pi) + math.log(2.0))
    o = math.log(0.01) - math.log(1000.0)
    assert two[0].prob == pytest.approx(1 / (1 + math.exp(o - a)), rel=1e-12)
    assert (two[0].tracks, two[0].extras) == (((None, 0),), (("A", 1),))


@pytest.mark.parametrize("n_pool, allowed", [(5, (True, True, True, True)), (4, (False, True, False, True, True)),
                                             (7, (True, True, True)), (1, (False, True, True, True)), (3, (True,))])
def test_extras_table_against_a_depth_first_enumeration(n_pool, allowed):
    """The extras table: every allowed multiset once, its rank in depth-first order (a multiset
    before its extensions) for exact-tie breaks, log(e!/prod c!), means sorted within a bucket."""
    ex = importlib.import_module("caper_edge.fusion.explain")
    pm = tuple(10.0 * i + 3.0 for i in range(n_pool))
    pv = tuple(1.0 + 7.0 * i * i for i in range(n_pool))
    tab = ex._build_table(pm, pv, allowed)
    most = len(allowed) - 1
    dfs: list[tuple[int, ...]] = []

    def walk(t):
        dfs.append(t)
        if len(t) < most:
            for j in range(t[-1] if t else 0, n_pool):
                walk(t + (j,))

    walk(())
    rows = [tuple(int(x) for x in tab.idx[r, :tab.e[r]]) for r in range(len(tab.idx))]
    assert sorted(rows) == sorted(t for t in dfs if allowed[len(t)])
    assert [int(x) for x in tab.lex] == [dfs.index(t) for t in rows]
    assert max(tab.lex) < tab.n_lex
    for r, t in enumerate(rows):
        ref = math.log(math.factorial(len(t)) / math.prod(math.factorial(t.count(j)) for j in set(t)))
        assert tab.mult[r] == pytest.approx(ref, abs=1e-12)
        assert tab.mean[r] == pytest.approx(sum(pm[j] for j in t))
    for b0, b1, bvar in tab.buckets:
        assert list(tab.mean[b0:b1]) == sorted(tab.mean[b0:b1])
        assert all(sum(pv[j] for j in rows[r]) <= bvar for r in range(b0, b1))
