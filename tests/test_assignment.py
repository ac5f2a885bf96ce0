"""linear_assignment against scipy.optimize.linear_sum_assignment, lap.lapjv and brute force."""

from __future__ import annotations

import itertools
import threading

import lap
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from caper_edge.track import linear_assignment

INF = np.inf


# ---------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------


def objective_unlimited(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[int, float]:
    """(pairs, total cost): the optimum is the max pair count, then the least total."""
    return len(rows), float(cost[rows, cols].sum()) if len(rows) else 0.0


def objective_limited(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray, limit: float) -> float:
    """lap's extended objective: matched cost + limit/2 per unmatched row and column."""
    n, m = cost.shape
    k = len(rows)
    return float(cost[rows, cols].sum() if k else 0.0) + limit / 2 * (n + m - 2 * k)


def scipy_reference(cost: np.ndarray) -> tuple[int, float]:
    """scipy on the finite problem: rows and columns without any allowed pair removed (scipy
    would call them infeasible). Only for matrices whose remaining part is feasible."""
    keep_r = np.isfinite(cost).any(axis=1)
    keep_c = np.isfinite(cost).any(axis=0)
    sub = cost[keep_r][:, keep_c]
    if sub.size == 0:
        return 0, 0.0
    r, c = linear_sum_assignment(sub.astype(np.float64))
    return len(r), float(sub[r, c].sum())


def lap_reference(cost: np.ndarray, limit: float) -> float:
    # Forbidden pairs become a cost lap can never prefer (far above the limit).
    finite = np.where(np.isfinite(cost), cost, abs(limit) * 4 + 1e4).astype(np.float64)
    _, x, _ = lap.lapjv(finite, extend_cost=True, cost_limit=limit)
    rows = np.flatnonzero(x >= 0)
    return objective_limited(finite, rows, x[rows], limit)


def extended_reference(cost: np.ndarray, limit: float) -> float:
    """lap's semantics solved exactly: scipy on the explicit (n+m) square extension that
    lap.lapjv(extend_cost=True, cost_limit=L) builds (L/2 slack blocks, zero corner). lap itself
    is inexact once costs approach its internal infinity lap.LARGE (1e6)."""
    n, m = cost.shape
    ext = np.full((n + m, n + m), limit / 2)
    ext[n:, m:] = 0.0
    finite = cost[np.isfinite(cost)]
    big = (np.abs(finite).sum() if finite.size else 0.0) + abs(limit) * (n + m) + 1.0
    ext[:n, :m] = np.where(np.isfinite(cost), cost, big)
    r, c = linear_sum_assignment(ext)
    return float(ext[r, c].sum())


def lap_is_exact(cost: np.ndarray, limit: float) -> bool:
    finite = cost[np.isfinite(cost)]
    return abs(limit) < 1e4 and (finite.size == 0 or np.abs(finite).max() < 1e4)


def brute_force(cost: np.ndarray) -> tuple[int, float]:
    """Largest number of allowed pairs, then least total, over every partial matching."""
    n, m = cost.shape
    best = (0, 0.0)
    for choice in itertools.product(range(-1, m), repeat=n):
        used = [c for c in choice if c >= 0]
        if len(used) != len(set(used)):
            continue
        pairs = [(r, c) for r, c in enumerate(choice) if c >= 0]
        if any(not np.isfinite(cost[r, c]) for r, c in pairs):
            continue
        total = float(sum(cost[r, c] for r, c in pairs))
        if len(pairs) > best[0] or (len(pairs) == best[0] and total < best[1]):
            best = (len(pairs), total)
    return best


def check_result(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray, limit: float = INF) -> None:
    assert rows.dtype == np.int64 and cols.dtype == np.int64
    assert rows.shape == cols.shape
    assert np.all(np.diff(rows) > 0), "rows must be sorted and distinct"
    assert len(set(cols.tolist())) == len(cols), "columns must be distinct"
    if len(rows):
        chosen = cost[rows, cols]
        assert np.all(np.isfinite(chosen)), "a forbidden pair was returned"
        assert np.all(chosen < limit), "a pair at or above the cost limit was returned"


def random_cost(rng: np.random.Generator, n: int, m: int, kind: str) -> np.ndarray:
    if kind == "uniform":
        return rng.random((n, m))
    if kind == "integers":  # many ties
        return rng.integers(0, 4, (n, m)).astype(np.float64)
    if kind == "negative":
        return rng.normal(0, 10, (n, m))
    if kind == "huge":
        return rng.random((n, m)) * 1e12 + 1e12
    if kind == "tiny":
        return rng.random((n, m)) * 1e-12
    if kind == "mixed":
        return rng.random((n, m)) * 10.0 ** rng.integers(-6, 7, (n, m))
    if kind == "constant":
        return np.full((n, m), 3.0)
    raise AssertionError(kind)


KINDS = ["uniform", "integers", "negative", "huge", "tiny", "mixed", "constant"]


def close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= 1e-9 * max(scale, 1e-300) + 1e-300


# ---------------------------------------------------------------------------------------------
# Optimality
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unlimited_matches_scipy(rng, kind, dtype):
    for _ in range(150):
        n, m = rng.integers(1, 13, 2)
        cost = random_cost(rng, n, m, kind).astype(dtype)
        rows, cols = linear_assignment(cost)
        check_result(cost, rows, cols)
        ref = scipy_reference(cost.astype(np.float64))
        got = objective_unlimited(cost.astype(np.float64), rows, cols)
        assert got[0] == ref[0] == min(n, m)
        assert close(got[1], ref[1], np.abs(cost).astype(np.float64).sum()), (cost, got, ref)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_limited_matches_lap(rng, kind, dtype):
    for _ in range(120):
        n, m = rng.integers(1, 13, 2)
        cost = random_cost(rng, n, m, kind).astype(dtype)
        c64 = cost.astype(np.float64)
        limit = float(np.quantile(c64, rng.uniform(0.05, 0.95))) * rng.uniform(0.5, 2.0)
        if kind == "negative":
            limit = float(rng.normal(0, 10))
        rows, cols = linear_assignment(cost, limit)
        check_result(c64, rows, cols, limit)
        got = objective_limited(c64, rows, cols, limit)
        scale = np.abs(c64).sum() + abs(limit) * (n + m)
        assert close(got, extended_reference(c64, limit), scale), (cost, limit, got)
        if lap_is_exact(c64, limit):
            assert close(got, lap_reference(c64, limit), scale), (cost, limit, got)


def test_forbidden_entries_against_scipy_and_lap(rng):
    for trial in range(600):
        n, m = rng.integers(1, 11, 2)
        cost = rng.random((n, m))
        cost[rng.random((n, m)) < rng.uniform(0.1, 0.6)] = INF
        if trial % 3 == 0:  # whole forbidden rows and columns
            cost[rng.integers(n)] = INF
            cost[:, rng.integers(m)] = INF
        rows, cols = linear_assignment(cost)
        check_result(cost, rows, cols)
        got = objective_unlimited(cost, rows, cols)
        if n <= 6 and m <= 6:
            ref = brute_force(cost)
        else:
            # Big-M reference: forbidden pairs cost more than any full assignment, so scipy
            # maximises the allowed pairs first; pairs at M are then dropped.
            finite = cost[np.isfinite(cost)]
            big = (np.abs(finite).sum() + 1) * 4 if finite.size else 1.0
            r, c = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
            ok = np.isfinite(cost[r, c])
            ref = (int(ok.sum()), float(cost[r[ok], c[ok]].sum()))
        assert got[0] == ref[0], (cost, got, ref)
        assert close(got[1], ref[1], np.abs(cost[np.isfinite(cost)]).sum()), (cost, got, ref)
        limit = rng.uniform(0.2, 1.2)
        rows, cols = linear_assignment(cost, limit)
        check_result(cost, rows, cols, limit)
        got = objective_limited(cost, rows, cols, limit)
        assert close(got, lap_reference(cost, limit), n + m)
        assert close(got, extended_reference(cost, limit), n + m)


def test_infeasible_without_limit_is_maximum_cardinality():
    # Rows 0 and 1 can only use column 0: one of them stays unassigned, and it is the dearer
    # one. scipy raises "infeasible" here; we return the best partial assignment.
    cost = np.array([[10.0, INF, INF], [1.0, INF, INF], [INF, 5.0, 3.0]])
    rows, cols = linear_assignment(cost)
    assert rows.tolist() == [1, 2] and cols.tolist() == [0, 2]
    with pytest.raises(ValueError):
        linear_sum_assignment(cost)


def test_all_forbidden_and_empty_shapes():
    for shape in [(0, 0), (0, 5), (5, 0)]:
        rows, cols = linear_assignment(np.zeros(shape))
        assert rows.shape == cols.shape == (0,)
    rows, cols = linear_assignment(np.full((3, 4), INF))
    assert len(rows) == 0
    rows, cols = linear_assignment(np.full((3, 4), 2.0), cost_limit=1.0)
    assert len(rows) == 0
    rows, cols = linear_assignment(np.array([[7.0]]))
    assert rows.tolist() == [0] and cols.tolist() == [0]


def test_limit_is_strict():
    # A pair costing exactly the limit is not better than leaving both unassigned.
    rows, _ = linear_assignment(np.array([[1.0]]), cost_limit=1.0)
    assert len(rows) == 0
    rows, _ = linear_assignment(np.array([[0.999]]), cost_limit=1.0)
    assert len(rows) == 1


@pytest.mark.parametrize("shape", [(50, 50), (200, 200), (300, 100), (100, 300), (199, 201)])
def test_large_against_scipy_and_lap(rng, shape):
    cost = rng.random(shape)
    rows, cols = linear_assignment(cost)
    check_result(cost, rows, cols)
    r, c = linear_sum_assignment(cost)
    assert abs(cost[rows, cols].sum() - cost[r, c].sum()) < 1e-9
    rows, cols = linear_assignment(cost, 0.3)
    assert abs(objective_limited(cost, rows, cols, 0.3) - lap_reference(cost, 0.3)) < 1e-9


def test_lap_is_inexact_on_huge_costs_where_we_are_not(rng):
    # Documents why huge costs are checked against scipy on the extension instead of lap.
    worse = 0
    for _ in range(100):
        cost = rng.random((5, 4)) * 1e12 + 1e12
        limit = float(np.median(cost))
        rows, cols = linear_assignment(cost, limit)
        exact = extended_reference(cost, limit)
        assert close(objective_limited(cost, rows, cols, limit), exact, 1e14)
        _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=limit)
        r = np.flatnonzero(x >= 0)
        worse += objective_limited(cost, r, x[r], limit) > exact * (1 + 1e-9)
    assert worse > 0, "lap became exact on huge costs: compare against it directly again"


def test_tracker_like_sparse_blocks(rng):
    # Gated tracking costs: mostly forbidden, a few near-diagonal candidates per row.
    for _ in range(200):
        n = int(rng.integers(1, 60))
        cost = np.full((n, n), INF)
        for i in range(n):
            for j in rng.choice(n, size=min(n, int(rng.integers(1, 4))), replace=False):
                cost[i, j] = rng.random()
        rows, cols = linear_assignment(cost, 0.8)
        check_result(cost, rows, cols, 0.8)
        assert close(objective_limited(cost, rows, cols, 0.8), lap_reference(cost, 0.8), n)


# ---------------------------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------------------------


def test_inputs_of_other_layouts_and_types(rng):
    cost = rng.random((6, 9))
    ref = linear_assignment(cost)
    for variant in (cost.T.copy().T, cost[:, ::1], np.asfortranarray(cost), cost.tolist()):
        got = linear_assignment(variant)
        assert all(np.array_equal(a, b) for a, b in zip(got, ref))
    strided = np.zeros((6, 18))
    strided[:, ::2] = cost
    got = linear_assignment(strided[:, ::2])
    assert all(np.array_equal(a, b) for a, b in zip(got, ref))
    ints = rng.integers(0, 9, (5, 5))
    r, c = linear_assignment(ints)
    r2, c2 = linear_sum_assignment(ints)
    assert ints[r, c].sum() == ints[r2, c2].sum()


@pytest.mark.parametrize(
    "cost, fragment",
    [
        (np.array([[1.0, np.nan]]), "cost[0, 1] is nan"),
        (np.array([[1.0], [-np.inf]]), "cost[1, 0] is -inf"),
        (np.zeros((2, 2, 2)), "2-D"),
        (np.zeros(3), "2-D"),
        ("abc", "cost"),
    ],
)
def test_bad_input_names_the_problem(cost, fragment):
    with pytest.raises(ValueError, match=None) as info:
        linear_assignment(cost)
    assert fragment in str(info.value)


def test_nan_cost_limit():
    with pytest.raises(ValueError, match="cost_limit"):
        linear_assignment(np.zeros((2, 2)), np.nan)


def test_threads_get_independent_workspaces(rng):
    costs = [rng.random((120, 120)) for _ in range(6)]
    expected = [linear_sum_assignment(c) for c in costs]
    results: dict[int, tuple] = {}

    def work(k: int) -> None:
        for _ in range(5):
            results[k] = linear_assignment(costs[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(costs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, (r, c) in enumerate(expected):
        got = results[k]
        assert abs(costs[k][got[0], got[1]].sum() - costs[k][r, c].sum()) < 1e-9
