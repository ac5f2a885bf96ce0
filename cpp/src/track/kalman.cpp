// Kalman box filter: fixed-size 8x8 arithmetic that exploits F = [[I, dt I], [0, I]] and
// H = [I, 0] instead of general matrix products (see kalman.hpp for the model).
#include "caper/kalman.hpp"

#include <cmath>

namespace caper::track {

namespace {

// Standard deviations of (x, y, w, h) scaled by the box size: (a w, a h, a w, a h).
std::array<double, 4> size_scaled(const std::array<double, 8>& mean, double a) {
  const double w = std::fabs(mean[2]), h = std::fabs(mean[3]);
  return {a * w, a * h, a * w, a * h};
}

}  // namespace

BoxState KalmanBoxFilter::initiate(const double* xywh) const {
  BoxState s;
  for (int k = 0; k < 4; ++k) s.mean[k] = xywh[k];
  const std::array<double, 4> pos = size_scaled(s.mean, 2.0 * position_std);
  const std::array<double, 4> vel = size_scaled(s.mean, 10.0 * velocity_std);
  for (int k = 0; k < 4; ++k) {
    s.cov[k * 8 + k] = pos[k] * pos[k];
    s.cov[(k + 4) * 8 + (k + 4)] = vel[k] * vel[k];
  }
  return s;
}

void KalmanBoxFilter::predict(BoxState& s, double dt) const {
  const std::array<double, 4> qp = size_scaled(s.mean, position_std);
  const std::array<double, 4> qv = size_scaled(s.mean, velocity_std);
  for (int k = 0; k < 4; ++k) s.mean[k] += dt * s.mean[k + 4];
  // P <- F P F': with P = [[A, B], [B', C]], F P F' = [[A + dt(B + B') + dt^2 C, B + dt C],
  // [B' + dt C, C]]. First rows 0..3 += dt * rows 4..7, then columns 0..3 += dt * cols 4..7.
  double* P = s.cov.data();
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 8; ++c) P[r * 8 + c] += dt * P[(r + 4) * 8 + c];
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 4; ++c) P[r * 8 + c] += dt * P[r * 8 + c + 4];
  for (int k = 0; k < 4; ++k) {
    P[k * 8 + k] += qp[k] * qp[k] * dt;
    P[(k + 4) * 8 + (k + 4)] += qv[k] * qv[k] * dt;
  }
}

void KalmanBoxFilter::update(BoxState& s, const double* xywh) const {
  const std::array<double, 4> r = size_scaled(s.mean, measurement_std);
  double* P = s.cov.data();
  // S = H P H' + R (the top-left 4x4 block plus R), factorised S = L L' (Cholesky).
  double L[16] = {};
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j <= i; ++j) {
      double sum = P[i * 8 + j] + (i == j ? r[i] * r[i] : 0.0);
      for (int k = 0; k < j; ++k) sum -= L[i * 4 + k] * L[j * 4 + k];
      L[i * 4 + j] = i == j ? std::sqrt(sum) : sum / L[j * 4 + j];
    }
  }
  // K' = S^-1 H P' = S^-1 (P[0:4, :]) since P is symmetric: solve L L' X = P[0:4, :].
  double Kt[4 * 8];
  for (int c = 0; c < 8; ++c) {
    double t[4];
    for (int i = 0; i < 4; ++i) {
      double sum = P[i * 8 + c];
      for (int k = 0; k < i; ++k) sum -= L[i * 4 + k] * t[k];
      t[i] = sum / L[i * 4 + i];
    }
    for (int i = 3; i >= 0; --i) {
      double sum = t[i];
      for (int k = i + 1; k < 4; ++k) sum -= L[k * 4 + i] * Kt[k * 8 + c];
      Kt[i * 8 + c] = sum / L[i * 4 + i];
    }
  }
  double innovation[4];
  for (int i = 0; i < 4; ++i) innovation[i] = xywh[i] - s.mean[i];
  for (int c = 0; c < 8; ++c) {
    double sum = 0.0;
    for (int i = 0; i < 4; ++i) sum += Kt[i * 8 + c] * innovation[i];
    s.mean[c] += sum;
  }
  // P -= K S K' = K (H P) = K P[0:4, :]; compute from the old P into a copy.
  const std::array<double, 64> old = s.cov;
  for (int a = 0; a < 8; ++a) {
    for (int b = 0; b < 8; ++b) {
      double sum = 0.0;
      for (int i = 0; i < 4; ++i) sum += Kt[i * 8 + a] * old[i * 8 + b];
      P[a * 8 + b] = old[a * 8 + b] - sum;
    }
  }
  // Symmetrise: the product above is symmetric in exact arithmetic only.
  for (int a = 0; a < 8; ++a)
    for (int b = a + 1; b < 8; ++b) P[a * 8 + b] = P[b * 8 + a] = 0.5 * (P[a * 8 + b] + P[b * 8 + a]);
}

std::array<double, 64> KalmanBoxFilter::transition(double dt) const {
  std::array<double, 64> F{};
  for (int k = 0; k < 8; ++k) F[k * 8 + k] = 1.0;
  for (int k = 0; k < 4; ++k) F[k * 8 + k + 4] = dt;
  return F;
}

std::array<double, 64> KalmanBoxFilter::process_noise(const BoxState& s, double dt) const {
  const std::array<double, 4> qp = size_scaled(s.mean, position_std);
  const std::array<double, 4> qv = size_scaled(s.mean, velocity_std);
  std::array<double, 64> Q{};
  for (int k = 0; k < 4; ++k) {
    Q[k * 8 + k] = qp[k] * qp[k] * dt;
    Q[(k + 4) * 8 + (k + 4)] = qv[k] * qv[k] * dt;
  }
  return Q;
}

std::array<double, 16> KalmanBoxFilter::measurement_noise(const BoxState& s) const {
  const std::array<double, 4> r = size_scaled(s.mean, measurement_std);
  std::array<double, 16> R{};
  for (int k = 0; k < 4; ++k) R[k * 4 + k] = r[k] * r[k];
  return R;
}

}  // namespace caper::track
