#include "caper/basket_zone.hpp"

#include <cmath>
#include <cstddef>

namespace caper::track {

bool BasketZone::contains(double cx, double cy, double depth_m) const {
  if (!std::isnan(depth_m) && (depth_m < depth_min_m || depth_m > depth_max_m)) return false;
  const std::size_t n = polygon.size() / 2;
  if (n < 3) return true;
  // Even-odd rule: count crossings of a ray towards +x with the polygon's edges.
  bool inside = false;
  for (std::size_t i = 0, j = n - 1; i < n; j = i++) {
    const double xi = polygon[2 * i], yi = polygon[2 * i + 1];
    const double xj = polygon[2 * j], yj = polygon[2 * j + 1];
    if ((yi > cy) != (yj > cy)) {
      const double x_cross = xi + (cy - yi) * (xj - xi) / (yj - yi);
      if (cx < x_cross) inside = !inside;
    }
  }
  return inside;
}

bool ZoneState::observe(bool inside, int64_t t_ns, int64_t enter_dwell_ns,
                        int64_t leave_dwell_ns, int32_t min_frames, TransitionKind& kind) {
  switch (zone) {
    case Zone::Outside:
      if (inside) {
        zone = Zone::Entering;
        since_ns = t_ns;
        frames = 0;
      } else {
        return false;
      }
      break;
    case Zone::Inside:
      if (!inside) {
        zone = Zone::Leaving;
        since_ns = t_ns;
        frames = 0;
      } else {
        return false;
      }
      break;
    case Zone::Entering:
      if (!inside) {  // back out before committing: no event
        zone = Zone::Outside;
        return false;
      }
      break;
    case Zone::Leaving:
      if (inside) {
        zone = Zone::Inside;
        return false;
      }
      break;
  }
  ++frames;
  const bool entering = zone == Zone::Entering;
  const int64_t dwell = entering ? enter_dwell_ns : leave_dwell_ns;
  if (frames >= min_frames && t_ns - since_ns >= dwell) {
    zone = entering ? Zone::Inside : Zone::Outside;
    kind = entering ? TransitionKind::EnteredBasket : TransitionKind::LeftBasket;
    return true;
  }
  return false;
}

}  // namespace caper::track
