"""KalmanBoxFilter against filterpy's KalmanFilter run with the documented matrices."""

from __future__ import annotations

import numpy as np
import pytest
from filterpy.kalman import KalmanFilter

from caper_edge.track import KalmanBoxFilter

SP, SV, SM = 1 / 20, 1 / 160, 1 / 20


# The model as documented in docs/tracker.md, written out independently of the C++ code.
def F(dt: float) -> np.ndarray:
    f = np.eye(8)
    f[:4, 4:] = dt * np.eye(4)
    return f


def Q(mean: np.ndarray, dt: float, sp: float = SP, sv: float = SV) -> np.ndarray:
    w, h = abs(mean[2]), abs(mean[3])
    return np.diag(np.square([sp * w, sp * h, sp * w, sp * h, sv * w, sv * h, sv * w, sv * h])) * dt


def R(mean: np.ndarray, sm: float = SM) -> np.ndarray:
    w, h = abs(mean[2]), abs(mean[3])
    return np.diag(np.square([sm * w, sm * h, sm * w, sm * h]))


def P0(z: np.ndarray, sp: float = SP, sv: float = SV) -> np.ndarray:
    w, h = z[2], z[3]
    return np.diag(np.square([2 * sp * w, 2 * sp * h, 2 * sp * w, 2 * sp * h,
                              10 * sv * w, 10 * sv * h, 10 * sv * w, 10 * sv * h]))


H = np.hstack([np.eye(4), np.zeros((4, 4))])


def assert_state_close(ours: tuple[np.ndarray, np.ndarray], ref_x: np.ndarray, ref_p: np.ndarray) -> None:
    mean, cov = ours
    np.testing.assert_allclose(mean, ref_x.ravel(), rtol=1e-6, atol=1e-6 * np.abs(ref_x).max())
    np.testing.assert_allclose(cov, ref_p, rtol=1e-6, atol=1e-6 * np.abs(ref_p).max())


def test_matrices_match_the_documented_model():
    kf = KalmanBoxFilter()
    mean = np.array([100.0, 50.0, 40.0, 80.0, 1.0, -2.0, 0.5, 0.0])
    for dt in (0.0, 1.0, 2.5):
        np.testing.assert_array_equal(kf.transition_matrix(dt), F(dt))
        np.testing.assert_allclose(kf.process_noise(mean, dt), Q(mean, dt), rtol=1e-15)
    np.testing.assert_allclose(kf.measurement_noise(mean), R(mean), rtol=1e-15)
    m0, c0 = kf.initiate([100.0, 50.0, 40.0, 80.0])
    np.testing.assert_array_equal(m0, [100, 50, 40, 80, 0, 0, 0, 0])
    np.testing.assert_allclose(c0, P0(np.array([100.0, 50.0, 40.0, 80.0])), rtol=1e-15)


@pytest.mark.parametrize("stds", [(SP, SV, SM), (0.1, 0.02, 0.03)])
def test_sequence_matches_filterpy(rng, stds):
    sp, sv, sm = stds
    kf = KalmanBoxFilter(position_std=sp, velocity_std=sv, measurement_std=sm)
    truth = np.array([120.0, 200.0, 60.0, 90.0])
    vel = np.array([4.0, -3.0, 0.3, -0.2])
    z = truth + rng.normal(0, 1, 4)
    ours = kf.initiate(z)
    ref = KalmanFilter(dim_x=8, dim_z=4)
    ref.x = np.concatenate([z, np.zeros(4)])[:, None]
    ref.P = P0(z, sp, sv)
    ref.H = H
    assert_state_close(ours, ref.x, ref.P)
    for step in range(150):
        dt = 2.0 if step % 17 == 5 else 1.0  # a dropped frame is a double step
        truth = truth + vel * dt
        # predict: Q from the mean before the step, as documented
        ref.F, ref.Q = F(dt), Q(ref.x.ravel(), dt, sp, sv)
        ref.predict()
        ours = kf.predict(*ours, dt=dt)
        assert_state_close(ours, ref.x, ref.P)
        if step % 11 == 3:  # missed detection: predict only
            continue
        z = truth + rng.normal(0, 1.5, 4)
        ref.R = R(ref.x.ravel(), sm)
        ref.update(z)
        ours = kf.update(*ours, z)
        assert_state_close(ours, ref.x, ref.P)
    # The filter followed the motion.
    np.testing.assert_allclose(ours[0][:4], truth, atol=6.0)
    np.testing.assert_allclose(ours[0][4:6], vel[:2], atol=1.0)


def test_general_covariance_update_matches_filterpy(rng):
    # A dense covariance (not the per-axis block form the filter itself produces) takes the
    # general 8x8 path; it must agree with filterpy too.
    kf = KalmanBoxFilter()
    for _ in range(50):
        a = rng.normal(size=(8, 8))
        cov = a @ a.T + 8 * np.eye(8)
        mean = np.concatenate([rng.uniform(50, 400, 2), rng.uniform(20, 120, 2), rng.normal(0, 2, 4)])
        z = mean[:4] + rng.normal(0, 2, 4)
        ref = KalmanFilter(dim_x=8, dim_z=4)
        ref.x, ref.P, ref.H, ref.R = mean[:, None].copy(), cov.copy(), H, R(mean)
        ref.update(z)
        assert_state_close(kf.update(mean, cov, z), ref.x, ref.P)


def test_blocks_stay_separate():
    # F, Q, R and P0 never couple x with y (etc.): the covariance keeps its 2x2 blocks, which
    # is what the fast update relies on.
    kf = KalmanBoxFilter()
    state = kf.initiate([10.0, 20.0, 30.0, 40.0])
    for k in range(20):
        state = kf.predict(*state)
        state = kf.update(*state, [10.0 + k, 20.0, 30.0, 40.0 + 0.1 * k])
    cov = state[1]
    axis = np.arange(8) % 4
    assert np.all(cov[axis[:, None] != axis[None, :]] == 0.0)
    np.testing.assert_array_equal(cov, cov.T)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda kf: kf.initiate([1.0, 2.0, 3.0]), "xywh must have 4 values"),
        (lambda kf: kf.initiate([1.0, 2.0, np.nan, 4.0]), "finite"),
        (lambda kf: kf.predict(np.zeros(8), np.eye(8), dt=-1.0), "dt must be"),
        (lambda kf: kf.predict(np.zeros(7), np.eye(8)), "mean must have 8 values"),
        (lambda kf: kf.update(np.zeros(8), np.eye(7), [1, 2, 3, 4]), "covariance must be (8, 8)"),
        (lambda kf: KalmanBoxFilter(position_std=0.0), "must be finite and > 0"),
    ],
)
def test_bad_input(call, fragment):
    with pytest.raises(ValueError) as info:
        call(KalmanBoxFilter())
    assert fragment in str(info.value)
