"""ClockMapper against a simulated MCU clock with drift, USB latency jitter, wrap and restart.

The reference is the simulation itself: the host time at which each sample was really taken.
"""

import numpy as np
import pytest

from caper_edge.scale.clock import ClockMapper


def simulate(rng, n=8000, ppm=150.0, t0_ms=1000, latency_ms=(1.0, 3.0), burst_every=500):
    """Host sample times (ns), MCU t_ms (wrapped) and host receive times (ns)."""
    true_ns = 5_000_000_000 + np.arange(n) * 12_500_000
    mcu_ms = (t0_ms + np.floor(np.arange(n) * 12.5 * (1 + ppm * 1e-6))).astype(np.int64)
    base, jitter = latency_ms
    lat_ms = base + rng.exponential(jitter, size=n)
    lat_ms[::burst_every] += 60.0               # a USB hiccup now and then
    # Bytes arrive in order: a delayed sample delays the ones behind it.
    recv_ns = np.maximum.accumulate(true_ns + (lat_ms * 1e6).astype(np.int64))
    return true_ns, mcu_ms % (1 << 32), recv_ns


def run(mapper, mcu_ms, recv_ns):
    return np.array([mapper.map(int(m), int(r)) for m, r in zip(mcu_ms, recv_ns)])


def test_lower_envelope_rejects_jitter_and_follows_drift(rng):
    true_ns, mcu_ms, recv_ns = simulate(rng)
    mapped = run(ClockMapper(window_s=8.0, max_drift_ppm=500.0), mcu_ms, recv_ns)
    # After the first second, the mapping is the sample time plus about the minimum latency
    # (1 ms) and the 1 ms quantisation of t_ms; jitter of 3 ms mean and 60 ms bursts do not leak in.
    err_ms = (mapped - true_ns)[80:] / 1e6
    assert np.percentile(np.abs(err_ms - 1.0), 99) < 1.5, np.percentile(err_ms, [1, 50, 99])
    naive_ms = (recv_ns - true_ns)[80:] / 1e6
    assert np.std(err_ms) < np.std(naive_ms) / 5


def test_never_after_receipt_and_strictly_increasing(rng):
    true_ns, mcu_ms, recv_ns = simulate(rng, n=3000)
    mapped = run(ClockMapper(), mcu_ms, recv_ns)
    # (a few ns after receipt are allowed: samples read together get strictly increasing times)
    assert (mapped <= recv_ns + 100).all()
    assert (np.diff(mapped) > 0).all()


def test_uint32_wrap_is_continuous(rng):
    true_ns, mcu_ms, recv_ns = simulate(rng, n=2000, t0_ms=(1 << 32) - 5000)
    assert mcu_ms.min() < 1000 < (1 << 32) - 6000 < mcu_ms.max()     # the counter wrapped
    m = ClockMapper()
    mapped = run(m, mcu_ms, recv_ns)
    assert m.restarts == 0
    err_ms = (mapped - true_ns)[80:] / 1e6
    assert np.abs(err_ms - 1.0).max() < 3.0


def test_mcu_restart_starts_over(rng):
    true_ns, mcu_ms, recv_ns = simulate(rng, n=2000, t0_ms=900_000)
    mcu_ms[1000:] = 10 + (mcu_ms[1000:] - mcu_ms[1000])    # rebooted: uptime starts again
    m = ClockMapper()
    mapped = run(m, mcu_ms, recv_ns)
    assert m.restarts == 1
    err_ms = (mapped - true_ns)[1100:] / 1e6
    assert np.abs(err_ms - 1.0).max() < 3.0
    assert (np.diff(mapped) > 0).all()


def test_bad_parameters():
    with pytest.raises(ValueError, match="window_s"):
        ClockMapper(window_s=0)
    with pytest.raises(ValueError, match="max_drift_ppm"):
        ClockMapper(max_drift_ppm=-1)
