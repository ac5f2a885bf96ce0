"""The load-cell model: split, calibration inversion, noise, dynamics, flags, determinism."""

import numpy as np
import pytest

from caper_edge.scale import FLAG_ADC_FAULT, FLAG_MOTION, FLAG_OVERLOAD, ScaleDecoder
from caper_edge.scale.loadcell import LoadCellModel, cell_split, centre_of_pressure

NS = 1_000_000_000
CAL = ((1000.0, -2000.0, 0.0, 50000.0), (0.05, 0.04, 0.06, 0.05))


def test_bilinear_split_and_its_inverse():
    # Hand-computed: 1000 g at u = 0.25, v = 0.5 -> 375, 125, 125, 375.
    np.testing.assert_allclose(cell_split(1000.0, (0.25, 0.5)), [375.0, 125.0, 125.0, 375.0])
    np.testing.assert_allclose(cell_split(80.0, (1.0, 1.0)), [0.0, 0.0, 80.0, 0.0])
    assert centre_of_pressure(cell_split(640.0, (0.8, 0.3))) == pytest.approx((0.8, 0.3))
    with pytest.raises(ValueError, match=r"pos = \(1.2, 0.5\)"):
        cell_split(1.0, (1.2, 0.5))


def test_counts_invert_the_calibration_and_noise_has_the_stated_std():
    model = LoadCellModel(CAL, seed=1, noise_g=2.0, creep_fraction=0.0)
    model.preload(2500.0, (0.6, 0.4))
    b = model.samples(0, 60 * NS)
    grams = b.grams(*CAL)
    assert len(b) == 4800
    assert grams.mean() == pytest.approx(2500.0, abs=0.2)
    assert grams.std() == pytest.approx(2.0, rel=0.05)
    cells = ((b.raw - np.array(CAL[0])) * np.array(CAL[1])).mean(axis=0)
    np.testing.assert_allclose(cells, cell_split(2500.0, (0.6, 0.4)), atol=0.2)


def test_chunking_does_not_change_the_samples():
    model = LoadCellModel(CAL, seed=5, drift_g_per_min=2.0, wander_g=1.0)
    item = model.place(1 * NS, 700.0, (0.5, 0.5)).item
    model.bump(3 * NS, 0.4)
    model.fault(4 * NS, 0.2)
    model.remove(5 * NS, item)
    whole = model.samples(0, 8 * NS)
    parts = [model.samples(a, min(a + 333_333_333, 8 * NS)) for a in range(0, 8 * NS, 333_333_333)]
    np.testing.assert_array_equal(np.concatenate([p.raw for p in parts]), whole.raw)
    np.testing.assert_array_equal(np.concatenate([p.flags for p in parts]), whole.flags)
    again = LoadCellModel(CAL, seed=5, drift_g_per_min=2.0, wander_g=1.0)
    item = again.place(1 * NS, 700.0, (0.5, 0.5)).item
    again.bump(3 * NS, 0.4)
    again.fault(4 * NS, 0.2)
    again.remove(5 * NS, item)
    np.testing.assert_array_equal(again.samples(0, 8 * NS).raw, whole.raw)


def test_placement_dynamics_push_ring_and_rest():
    model = LoadCellModel(CAL, seed=2, noise_g=1.0, creep_fraction=0.0)
    ev = model.place(1 * NS, 1000.0, (0.5, 0.5), duration_s=0.5, push_g=150.0, ring_s=0.6)
    b = model.samples(0, 5 * NS)
    g = b.grams(*CAL)
    t = b.t_ns
    pushing = (t > ev.t_start_ns + 0.2 * NS) & (t < ev.t_release_ns - 0.1 * NS)
    assert g[pushing].max() > 1100.0                        # the hand pushes beyond the mass
    ringing = (t >= ev.t_release_ns) & (t < ev.t_release_ns + 0.2 * NS)
    assert np.ptp(g[ringing]) > 50.0                         # the basket rings after release
    at_rest = t >= ev.t_rest_ns
    assert np.abs(g[at_rest] - 1000.0).max() < 6.0           # ring below the noise after t_rest
    assert ev.t_rest_ns - ev.t_release_ns == pytest.approx(0.6 * NS, abs=1e6)


def test_bump_sets_motion_flag_and_leaves_the_static_load():
    model = LoadCellModel(CAL, seed=4, creep_fraction=0.0)
    model.preload(3000.0)
    ev = model.bump(2 * NS, accel_g=0.5, duration_s=0.6)
    b = model.samples(0, 4 * NS)
    g = b.grams(*CAL)
    during = (b.t_ns >= ev.t_start_ns) & (b.t_ns < ev.t_release_ns)
    assert (b.flags[during] & FLAG_MOTION).all() and not (b.flags[~during] & FLAG_MOTION).any()
    assert np.ptp(g[during]) > 500.0
    assert abs(g[b.t_ns > ev.t_release_ns + NS // 2].mean() - 3000.0) < 1.0


def test_fault_freezes_counts_and_overload_clips():
    model = LoadCellModel(CAL, seed=6)
    model.fault(1 * NS, 0.25)
    b = model.samples(0, 2 * NS)
    faulted = (b.flags & FLAG_ADC_FAULT) != 0
    assert faulted.sum() == 20
    assert (b.raw[faulted] == b.raw[np.argmax(faulted) - 1]).all()
    heavy = LoadCellModel(CAL, seed=6)
    heavy.preload(600_000.0, (1.0, 1.0))                    # 600 kg on cell 2: beyond 24 bits
    hb = heavy.samples(0, NS // 10)
    assert (hb.flags & FLAG_OVERLOAD).all() and (hb.raw[:, 2] == 2**23 - 1).all()


def test_lines_decode_to_the_same_samples():
    model = LoadCellModel(CAL, seed=7, mcu_t0_ms=2**32 - 100, seq0=65530)
    b = model.samples(0, NS)
    out = ScaleDecoder().feed(b"".join(line for _, line in model.lines(0, NS)))
    assert [s.raw for s in out] == [tuple(r) for r in b.raw.tolist()]
    assert [s.seq for s in out][:8] == [65530, 65531, 65532, 65533, 65534, 65535, 0, 1]
    assert out[0].t_ms == 2**32 - 100 and out[-1].t_ms < 1000   # t_ms wrapped
