// Kalman box filter: fixed-size 8x8 arithmetic that exploits F = [[I, dt I], [0, I]] and
// H = [I, 0] instead of general matrix products (see kalman.hpp for the model).
#include "caper/kalman.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

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

namespace {

// F, Q, R and P0 only couple each coordinate with its own velocity, so a covariance built by
// initiate/predict/update stays block diagonal: four independent 2x2 blocks (k, k+4). For such
// a covariance the update separates into four scalar-measurement filters.
bool is_axis_separable(const double* P) {
  // OR of the bit patterns (sign ignored) of every entry outside the blocks: branch-free, so
  // the compiler vectorises it; NaN or inf there also takes the general path.
  uint64_t off_block = 0;
  for (int i = 0; i < 64; ++i) {
    uint64_t bits;
    std::memcpy(&bits, P + i, sizeof bits);
    const bool outside = ((i >> 3) & 3) != (i & 3);
    off_block |= outside ? (bits & 0x7FFFFFFFFFFFFFFFull) : 0ull;
  }
  return off_block == 0;
}

void update_separable(BoxState& s, const std::array<double, 4>& r, const double* xywh) {
  double* P = s.cov.data();
  for (int k = 0; k < 4; ++k) {
    const int v = k + 4;
    const double pxx = P[k * 8 + k], pxv = P[k * 8 + v], pvv = P[v * 8 + v];
    const double S = pxx + r[k] * r[k];
    const double kx = pxx / S, kv = pxv / S;
    const double innovation = xywh[k] - s.mean[k];
    s.mean[k] += kx * innovation;
    s.mean[v] += kv * innovation;
    P[k * 8 + k] = pxx - kx * pxx;
    P[k * 8 + v] = P[v * 8 + k] = pxv - kx * pxv;
    P[v * 8 + v] = pvv - kv * pxv;
  }
}

}  // namespace

void KalmanBoxFilter::update(BoxState& s, const double* xywh) const {
  const std::array<double, 4> r = size_scaled(s.mean, measurement_std);
  double* P = s.cov.data();
  if (is_axis_separable(P)) return update_separable(s, r, xywh);
  // General covariance (e.g. one handed in from Python): the full 8x8 update.
  // S = H P H' + R: the top-left 4x4 block of P plus R. Invert it through its Cholesky factor
  // S = L L' (S^-1 = L'^-1 L^-1); 4x4 is small enough that the explicit inverse is cheapest.
  double L[4][4] = {};
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j <= i; ++j) {
      double sum = P[i * 8 + j] + (i == j ? r[i] * r[i] : 0.0);
      for (int k = 0; k < j; ++k) sum -= L[i][k] * L[j][k];
      L[i][j] = i == j ? std::sqrt(sum) : sum / L[j][j];
    }
  }
  double Linv[4][4] = {};  // lower triangular
  for (int i = 0; i < 4; ++i) {
    Linv[i][i] = 1.0 / L[i][i];
    for (int j = 0; j < i; ++j) {
      double sum = 0.0;
      for (int k = j; k < i; ++k) sum -= L[i][k] * Linv[k][j];
      Linv[i][j] = sum * Linv[i][i];
    }
  }
  double Sinv[4][4];
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      double sum = 0.0;
      for (int k = std::max(i, j); k < 4; ++k) sum += Linv[k][i] * Linv[k][j];
      Sinv[i][j] = sum;
    }
  }
  // K = P H' S^-1 = P[:, 0:4] S^-1 (8x4).
  double K[8][4];
  for (int a = 0; a < 8; ++a) {
    for (int j = 0; j < 4; ++j) {
      double sum = 0.0;
      for (int i = 0; i < 4; ++i) sum += P[a * 8 + i] * Sinv[i][j];
      K[a][j] = sum;
    }
  }
  double innovation[4];
  for (int i = 0; i < 4; ++i) innovation[i] = xywh[i] - s.mean[i];
  for (int a = 0; a < 8; ++a) {
    double sum = 0.0;
    for (int i = 0; i < 4; ++i) sum += K[a][i] * innovation[i];
    s.mean[a] += sum;
  }
  // P -= K S K' = K (H P) = K P[0:4, :]. Computed on the upper triangle from the old rows
  // 0..3 (saved first: they change) and mirrored, which also keeps P exactly symmetric.
  double top[4][8];
  for (int i = 0; i < 4; ++i)
    for (int b = 0; b < 8; ++b) top[i][b] = P[i * 8 + b];
  for (int a = 0; a < 8; ++a) {
    for (int b = a; b < 8; ++b) {
      double sum = 0.0;
      for (int i = 0; i < 4; ++i) sum += K[a][i] * top[i][b];
      const double v = P[a * 8 + b] - sum;
      P[a * 8 + b] = v;
      P[b * 8 + a] = v;
    }
  }
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
