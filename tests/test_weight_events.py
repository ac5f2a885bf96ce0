"""WeightEventDetector (C++): exact behaviour on hand-built signals, and accuracy on simulated
traces against the load-cell model's ground truth (caper_edge.scale.loadcell)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from caper_edge import _core
from caper_edge.config import default_table
from caper_edge.scale import FLAG_ADC_FAULT, FLAG_MOTION, WeightEventDetector
from caper_edge.scale.loadcell import LoadCellModel, cell_split
from caper_edge.scale.scenarios import Score, build, score

NS = 1_000_000_000
PERIOD = 12_500_000  # 80 Hz


def times(n: int, start: int = 0) -> np.ndarray:
    return start + np.arange(n, dtype=np.int64) * PERIOD


def run_scenario(name: str, seed: int, **kw) -> tuple[Score, list]:
    sc = build(name, None, seed, **kw)
    t, cells, flags = sc.calibrated()
    events = WeightEventDetector().push_many(t, cells, flags)
    return score(sc.changes, events), events


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------


def test_cpp_defaults_equal_the_documented_defaults():
    documented = default_table()["scale"]["events"]
    core = _core.WeightEventParams()
    assert {k: getattr(core, k) for k in documented} == documented


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"settle_window_s": 0.01}, "settle_window_s = 0.01"),
        ({"min_delta_g": -1.0}, "min_delta_g = -1"),
        ({"active_std_sigmas": 1.0}, "active_std_sigmas = 1"),
        ({"hf_gate_ratio": 0.5}, "hf_gate_ratio = 0.5"),
        ({"min_delta": 3.0}, "unknown weight event parameter 'min_delta'"),
        ({"noise_g": "big"}, "noise_g = 'big'"),
        ({"use_motion_flag": 1}, "use_motion_flag = 1"),
    ],
)
def test_bad_parameters_are_named(params, fragment):
    with pytest.raises(ValueError) as info:
        WeightEventDetector(**params)
    assert fragment in str(info.value)


def test_from_config_round_trip():
    from caper_edge import config

    det = WeightEventDetector.from_config(config.load().scale.events)
    assert dataclasses.asdict(det.params) == default_table()["scale"]["events"]


# ---------------------------------------------------------------------------------------------
# Exact behaviour on hand-built signals
# ---------------------------------------------------------------------------------------------


def test_noise_free_step_is_decided_by_the_documented_rule():
    # 0 g for 2 s, then exactly 100 g. Settle window = 0.2 s = 16 samples; at rest needs the
    # window flat AND the 16 samples before it at the same level. The first window all at 100 g
    # preceded by 16 samples at 100 g ends at step + 31: that sample's push returns the event.
    det = WeightEventDetector()
    step = 160
    g = np.where(np.arange(400) < step, 0.0, 100.0)
    t = times(400)
    decided_at = [i for i in range(400) for e in det.push(int(t[i]), float(g[i])) if e.kind == "settled"]
    assert decided_at == [step + 31]
    det = WeightEventDetector()
    (event,) = [e for e in det.push_many(t, g) if e.kind == "settled"]
    assert event.delta_g == pytest.approx(100.0, abs=1e-9)
    assert event.level_g == pytest.approx(100.0, abs=1e-9)
    assert event.t_start_ns == t[step]
    assert event.t_settled_ns == t[step + 16]
    assert event.t_decided_ns == t[step + 31]
    assert event.cell_delta_g is None and event.cop is None
    assert det.state == "stable" and det.baseline_g == pytest.approx(100.0)


def test_push_push_cells_and_push_many_agree(rng):
    n = 1200
    cells = np.zeros((n, 4)) + rng.normal(0, 0.75, size=(n, 4))
    cells[400:] += cell_split(250.0, (0.3, 0.7))
    cells[800:] -= cell_split(250.0, (0.3, 0.7))
    flags = np.zeros(n, dtype=np.uint8)
    flags[600:620] = FLAG_MOTION
    t = times(n)

    def key(events):
        return [(e.kind, e.t_start_ns, e.t_settled_ns, e.t_decided_ns, round(e.delta_g, 9)) for e in events]

    a = WeightEventDetector().push_many(t, cells, flags)
    d = WeightEventDetector()
    b = [e for i in range(n) for e in d.push_cells(int(t[i]), cells[i].tolist(), int(flags[i]))]
    d = WeightEventDetector()
    c = [e for i in range(n) for e in d.push(int(t[i]), float(cells[i].sum()), int(flags[i]))]
    assert key(a) == key(b) == key(c)
    assert [round(e.delta_g) for e in a if e.kind == "settled"] == [250, -250]


def test_per_cell_deltas_and_centre_of_pressure():
    model = LoadCellModel(None, seed=3)
    model.place(2 * NS, 1500.0, (0.2, 0.75), duration_s=0.5)
    b = model.samples(0, 6 * NS)
    cells = (b.raw - model.offsets) * model.gains
    (e,) = [e for e in WeightEventDetector().push_many(b.t_ns, cells, b.flags) if e.kind == "settled"]
    np.testing.assert_allclose(e.cell_delta_g, cell_split(1500.0, (0.2, 0.75)), atol=3.0)
    assert e.cop == pytest.approx((0.2, 0.75), abs=0.01)


def test_faults_out_of_order_and_nan_are_dropped_and_counted():
    det = WeightEventDetector()
    t = times(600)
    g = np.full(600, 50.0)
    g[300:310] = 9999.0                       # a stuck ADC's garbage, flagged as a fault
    flags = np.zeros(600, dtype=np.uint8)
    flags[300:310] = FLAG_ADC_FAULT
    g[400] = np.nan
    assert det.push_many(t, g, flags) == []
    assert det.push(int(t[100]), 50.0) == []  # older than the last sample
    s = det.stats
    assert (s["faults"], s["out_of_order"], s["activities"]) == (11, 1, 0)


def test_change_during_a_gap_is_reported_after_it():
    det = WeightEventDetector()
    t1, t2 = times(400), times(400, start=int(400 * PERIOD + 2 * NS))    # 2 s without samples
    events = det.push_many(t1, np.full(400, 10.0)) + det.push_many(t2, np.full(400, 510.0))
    (e,) = [e for e in events if e.kind == "settled"]
    assert e.delta_g == pytest.approx(500.0)
    assert e.t_start_ns == t1[-1]             # the change happened somewhere in the gap
    assert det.stats["gaps"] == 1


def test_array_layouts_are_checked():
    det = _core.WeightEventDetector()
    t = times(10)
    with pytest.raises(ValueError, match="grams must be a C-contiguous float64"):
        det.push_many(t, np.zeros(10, dtype=np.float32), None)
    with pytest.raises(ValueError, match=r"grams must be \(n,\) total grams or \(n, 4\).*got shape \(10, 3\)"):
        det.push_many(t, np.zeros((10, 3)), None)
    with pytest.raises(ValueError, match="t_ns must be a C-contiguous int64"):
        det.push_many(t.astype(np.float64), np.zeros(10), None)
    with pytest.raises(ValueError, match=r"flags must be \(n,\) uint8 with n = len\(t_ns\) = 10"):
        det.push_many(t, np.zeros(10), np.zeros(9, dtype=np.uint8))
    with pytest.raises(ValueError, match="non-contiguous"):
        det.push_many(t, np.zeros((10, 8))[:, ::2], None)
    with pytest.raises(ValueError, match="flags = 256"):
        det.push(0, 1.0, 256)
    with pytest.raises(ValueError, match="cells must hold 4"):
        det.push_cells(0, [1.0, 2.0], 0)


# ---------------------------------------------------------------------------------------------
# Simulated traces (ground truth from the load-cell model)
# ---------------------------------------------------------------------------------------------


def check_accuracy(total: Score) -> None:
    ratio = total.error_ratio
    assert total.missed == 0, f"{total.missed} weight changes without an event"
    assert not total.extra, f"events with no weight change: {total.extra[:3]}"
    # Target: |error| <= max(2 g, 1 % |dW|) at p95; median decision latency <= 0.3 s after ring-down.
    assert np.percentile(ratio, 95) <= 1.0, np.sort(ratio)[-10:]
    assert np.median(total.latency_s) <= 0.3, np.percentile(total.latency_s, [5, 50, 95])


def test_extremes_5_g_and_5_kg_with_hand_pushes():
    model = LoadCellModel(None, seed=9)
    light = model.place(2 * NS, 5.0, (0.7, 0.2), duration_s=0.6, push_g=40.0)
    heavy = model.place(6 * NS, 5000.0, (0.4, 0.5), duration_s=0.7, push_g=900.0, ring_s=1.0)
    gone = model.remove(11 * NS, heavy.item, duration_s=0.5, grip_g=400.0)
    b = model.samples(0, 15 * NS)
    events = WeightEventDetector().push_many(b.t_ns, (b.raw - model.offsets) * model.gains, b.flags)
    s = score([light, heavy, gone], events)
    assert s.missed == 0 and not s.extra, events
    assert (s.error_ratio <= 1.0).all(), s.error_g
    assert (s.latency_s <= 0.3).all(), s.latency_s


@pytest.mark.parametrize("name", ["steps", "bumpy"])
def test_accuracy_and_latency_on_simulated_traces(name):
    total = Score.empty()
    for seed in range(4):
        total = total.merge(run_scenario(name, seed)[0])
    assert len(total.error_g) >= 48                       # 5 g .. 5 kg, placed, dropped, removed
    check_accuracy(total)


@pytest.mark.slow
@pytest.mark.parametrize("noise_g", [1.0, 1.5, 2.0])
def test_accuracy_sweep_over_seeds_and_noise(noise_g):
    total = Score.empty()
    for name in ("steps", "bumpy"):
        for seed in range(20):
            total = total.merge(run_scenario(name, seed, noise_g=noise_g)[0])
    check_accuracy(total)


@pytest.mark.parametrize(
    "name, kw",
    [("bumps", {"flagged": True}), ("bumps", {"flagged": False}), ("drift", {"duration_s": 240.0})],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_event_without_a_weight_change(name, kw, seed):
    _, events = run_scenario(name, seed, **kw)
    assert events == []


def test_provisional_comes_first_and_is_resolved():
    _, events = run_scenario("steps", 0, events=30)
    provisional = [e for e in events if e.provisional]
    assert len(provisional) >= 10
    for p in provisional:
        (final,) = [e for e in events if not e.provisional and e.t_start_ns == p.t_start_ns]
        assert final.t_decided_ns > p.t_decided_ns
        if final.kind == "settled":
            assert abs(p.delta_g - final.delta_g) <= max(10.0, 0.15 * abs(final.delta_g))
