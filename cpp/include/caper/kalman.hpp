// Constant-velocity Kalman filter for boxes, state (cx, cy, w, h, vcx, vcy, vw, vh).
//
// Why xywh (as BoT-SORT) rather than xyah (ByteTrack, DeepSORT): the cart camera looks down on
// items that rotate in the hand, so width and height change independently and quickly; an
// aspect-ratio state couples them and gives wide, flat items (small h) a tiny position noise
// in x. With xywh every noise term scales with the box extent along its own axis.
//
// Units: positions and sizes in pixels, velocities in pixels per step, dt in steps (frames
// of the nominal period; the tracker passes elapsed time / frame period, so a dropped frame
// is a step of 2). Noise standard deviations are fractions of the box size:
//   initial    P0 = diag(2 sp w, 2 sp h, 2 sp w, 2 sp h, 10 sv w, 10 sv h, 10 sv w, 10 sv h)^2
//   process    Q  = diag(sp w, sp h, sp w, sp h, sv w, sv h, sv w, sv h)^2 * dt   (w, h of the
//              mean before the step; variance grows linearly with elapsed steps)
//   transition F  = [[I4, dt I4], [0, I4]]
//   measure    H  = [I4, 0],   R = diag(sm w, sm h, sm w, sm h)^2  (w, h of the predicted mean)
// The update is the textbook one: K = P H' S^-1, x += K (z - H x), P -= K S K'.
#pragma once

#include <array>

namespace caper::track {

struct BoxState {
  std::array<double, 8> mean{};
  std::array<double, 64> cov{};  // row-major 8x8, symmetric
};

struct KalmanBoxFilter {
  double position_std = 1.0 / 20.0;     // sp: position process noise, fraction of box size
  double velocity_std = 1.0 / 160.0;    // sv: velocity process noise, fraction of box size
  double measurement_std = 1.0 / 20.0;  // sm: detection noise, fraction of box size

  // New state from a measured box (cx, cy, w, h); velocities start at zero.
  BoxState initiate(const double* xywh) const;
  // Propagate by dt steps (dt >= 0).
  void predict(BoxState& s, double dt) const;
  // Correct with a measured box (cx, cy, w, h).
  void update(BoxState& s, const double* xywh) const;

  // The matrices used above, for tests and documentation (row-major).
  std::array<double, 64> transition(double dt) const;
  std::array<double, 64> process_noise(const BoxState& s, double dt) const;
  std::array<double, 16> measurement_noise(const BoxState& s) const;
};

}  // namespace caper::track
