"""Health aggregation utilities against numpy references and hand-computed cases."""

import numpy as np
import pytest

from caper_edge.metrics import (
    DriftMonitor,
    P2Quantile,
    ProcessCpu,
    RateMeter,
    RunningStats,
    StageMetrics,
    WindowQuantiles,
    cpu_temperature_c,
    gpu_temperature_c,
    rss_mb,
)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("dist", ["uniform", "lognormal", "exponential"])
def test_p2_tracks_numpy_quantile(rng, q, dist):
    x = {"uniform": rng.uniform(0, 100, 20_000), "lognormal": rng.lognormal(1.0, 0.6, 20_000),
         "exponential": rng.exponential(5.0, 20_000)}[dist]
    est = P2Quantile(q)
    for v in x:
        est.add(float(v))
    exact = float(np.quantile(x, q))
    # P² is an estimate: within 3 % of the exact value, or of the data's interquartile scale.
    tol = 0.03 * max(abs(exact), float(np.subtract(*np.quantile(x, [0.75, 0.25]))))
    assert abs(est.value() - exact) <= tol


def test_p2_small_counts_are_exact():
    est = P2Quantile(0.5)
    assert est.value() is None
    for v in (5.0, 1.0, 3.0):
        est.add(v)
    assert est.value() == 3.0
    with pytest.raises(ValueError, match="quantile q = 1.0"):
        P2Quantile(1.0)


def test_window_quantiles_equal_numpy_over_the_last_n(rng):
    w = WindowQuantiles(window=100)
    x = rng.normal(10, 3, 357)
    for v in x:
        w.add(float(v))
    assert len(w) == 100
    assert w.quantiles([0.5, 0.99]) == pytest.approx(list(np.quantile(x[-100:], [0.5, 0.99])), rel=1e-12)
    assert WindowQuantiles(4).quantiles([0.5]) == [None]


def test_rate_meter_hand_computed():
    r = RateMeter(window_s=2)
    for t in [10 + k / 10 for k in range(30)]:  # 10 events per second for 3 s (exact decimals)
        r.add(float(t))
    # At t=13.0 the window covers seconds 11 and 12 (current second 13 empty): 20 events / 2 s.
    assert r.rate(13.0) == pytest.approx(10.0)
    assert r.rate(20.0) == 0.0  # long silence: everything aged out
    assert r.total == 30


def test_rate_meter_short_history_uses_elapsed_time():
    r = RateMeter(window_s=5)
    r.add(100.0)
    r.add(100.25)
    assert r.rate(100.5) == pytest.approx(2 / 0.5)


def test_running_stats_equal_numpy(rng):
    x = rng.normal(3.0, 2.0, 1000)
    s = RunningStats()
    for v in x:
        s.add(float(v))
    assert s.mean == pytest.approx(x.mean()) and s.variance == pytest.approx(x.var(ddof=1))
    assert (s.min, s.max) == (x.min(), x.max())


def test_drift_monitor_reports_a_shift_in_baseline_sigmas(rng):
    d = DriftMonitor(baseline_samples=500, recent=50)
    base = rng.normal(0.8, 0.05, 500)
    for v in base:
        d.add(float(v))
    assert abs(d.snapshot()["drift_sigma"]) < 1.0
    for v in rng.normal(0.6, 0.05, 500):  # confidence fell by 4 sigma
        d.add(float(v))
    snap = d.snapshot()
    expected = (0.6 - base.mean()) / base.std(ddof=1)
    assert snap["drift_sigma"] == pytest.approx(expected, abs=0.5)
    assert DriftMonitor().snapshot()["drift_sigma"] is None


def test_stage_metrics_snapshot():
    s = StageMetrics(window=10, rate_window_s=1)
    for i in range(10):
        s.record(latency_ns=(i + 1) * 1_000_000, now_s=50.0 + i * 0.05)
    snap = s.snapshot(50.5)
    assert snap["latency_ms_p50"] == pytest.approx(5.5) and snap["latency_ms_p99"] == pytest.approx(9.91)
    assert snap["count"] == 10 and snap["fps"] == pytest.approx(20.0)


def test_thermal_zones_from_a_fake_sysfs(tmp_path):
    for i, (kind, milli) in enumerate([("acpitz", 40000), ("x86_pkg_temp", 61500), ("GPU-therm", 55250)]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{milli}\n")
    assert cpu_temperature_c(str(tmp_path)) == 61.5
    assert gpu_temperature_c(str(tmp_path)) == 55.25
    assert cpu_temperature_c(str(tmp_path / "missing")) is None


def test_process_readings():
    cpu = ProcessCpu()
    assert cpu.percent() is None  # first call only sets the reference
    sum(i * i for i in range(200_000))
    assert cpu.percent() >= 0.0
    assert rss_mb() > 1.0
