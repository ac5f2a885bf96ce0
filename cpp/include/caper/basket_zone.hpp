// Basket zone: where an observation is (polygon in the image plus a depth range) and the
// per-track hysteresis state machine outside -> entering -> inside -> leaving -> outside.
#pragma once

#include <cstdint>
#include <vector>

namespace caper::track {

enum class Zone : uint8_t { Outside = 0, Entering = 1, Inside = 2, Leaving = 3 };

enum class TransitionKind : uint8_t {
  EnteredBasket = 0,    // committed entering -> inside
  LeftBasket = 1,       // committed leaving -> outside
  ExpiredInBasket = 2,  // the track was removed while inside (or leaving) the basket
};

struct ZoneTransition {
  TransitionKind kind;
  int64_t track_id;
  int32_t class_id;
  int64_t t_ns;          // first observation in the new zone (when the item crossed)
  int64_t decided_t_ns;  // observation at which the hysteresis committed (or removal time)
};

struct BasketZone {
  std::vector<double> polygon;  // x0, y0, x1, y1, ... in pixels; empty: the whole image
  double depth_min_m = 0.0;     // depth range of the basket interior; a detection with a
  double depth_max_m = 1e9;     // finite depth outside it is not in the basket

  // Is a detection centred at (cx, cy) with depth `depth_m` (NaN: unknown) in the basket?
  bool contains(double cx, double cy, double depth_m) const;
};

// Hysteresis: a new zone is committed only after the observations have stayed in it for at
// least `dwell_ns` and `min_frames` observations; an observation back in the old zone cancels.
struct ZoneState {
  Zone zone = Zone::Outside;
  int64_t since_ns = 0;   // first observation in the candidate zone
  int32_t frames = 0;     // observations in the candidate zone so far

  // Feed one observation; returns true and fills `kind` when a transition commits.
  bool observe(bool inside, int64_t t_ns, int64_t enter_dwell_ns, int64_t leave_dwell_ns,
               int32_t min_frames, TransitionKind& kind);
  bool in_basket() const { return zone == Zone::Inside || zone == Zone::Leaving; }
};

}  // namespace caper::track
