"""Scenarios: what the shopper does, planned action by action into a :class:`World`.

Each scenario is a generator that plans one action (or a short group) at a time and yields the
time up to which the session is planned; the simulator pulls it only as far as it renders, so
even the 30-minute ``long`` scenario is planned lazily.

===========  =========  ==========================================================================
scenario     default s  what happens
===========  =========  ==========================================================================
simple       45         one hand adds distinct products one at a time, now and then takes one out
busy         60         adds and removals in quick succession, repeats of a SKU already in the
                        basket, two hands placing two products at once, two units of a SKU in
                        one hand (qty 2), the cart pushed between actions
lookalike    45         mostly products from look-alike groups (same packaging, other weight)
shrink       50         a large bag goes in; later a small product is slipped under it, concealed
                        by the hand the whole way (``visible: false``); a product is swapped for a
                        lighter one (often its look-alike) in one visit
bumpy        30         products already in the basket, the cart rolls and hits bumps; no hand
long         1800       a whole shopping trip for soak tests: everything above, slower, with
                        aisles of pushing in between
===========  =========  ==========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from .catalog import Sku, catalog
from .world import World

__all__ = ["DEFAULT_DURATION_S", "SCENARIOS", "plan"]

Planner = Callable[[World, float], Iterator[float]]

#: A hand visit lasts about 3-4.5 s; no visit starts later than this before the session ends,
#: so every planned event completes (and is reported) inside the session.
ACTION_S = 4.5


# -------------------------------------------------------------------------------------------------
# Building blocks
# -------------------------------------------------------------------------------------------------


def _choice(world: World, skus: list[Sku]) -> Sku:
    return skus[int(world.rng.integers(len(skus)))]


def _add(world: World, t: float, sku: Sku, *, side: str | None = None) -> float | None:
    item = world.new_item(sku)
    if not world.find_spot(item):
        return None
    return world.plan_add(t, [item], side=side).t_end


def _remove(world: World, t: float, *, side: str | None = None) -> float | None:
    options = world.removable(t)
    if not options:
        return None
    item = options[int(world.rng.integers(len(options)))]
    return world.plan_remove(t, item, side=side).t_end


def _add_two_hands(world: World, t: float, pool: list[Sku]) -> float | None:
    """Two products placed at (almost) the same moment by two hands from the two sides."""
    a, b = world.new_item(_choice(world, pool)), world.new_item(_choice(world, pool))
    if not world.find_spot(a) or not world.find_spot(b):
        return None
    h1 = world.plan_add(t, [a], side="left")
    h2 = world.plan_add(t + float(world.rng.uniform(0.0, 0.25)), [b], side="right")
    return max(h1.t_end, h2.t_end)


def _add_pair(world: World, t: float, pool: list[Sku]) -> float | None:
    """Two units of one small SKU in one hand, side by side: one event with qty 2."""
    small = [s for s in pool if max(s.size_mm[:2]) <= 110 and s.size_mm[2] <= 130]
    if not small:
        return None
    sku = _choice(world, small)
    first = world.new_item(sku, sku.shape == "cylinder" and "upright" or None)
    if not world.find_spot(first, allow_stack=False):
        return None
    second = world.new_item(sku, first.pose)
    gap = first.sprite.size_mm[1] + 6.0
    c, s = math.cos(first.yaw), math.sin(first.yaw)
    second.x, second.y, second.yaw = first.x - s * gap, first.y + c * gap, first.yaw
    support = world.support(second)
    if support is None or abs(support - first.z_base) > 1.0:
        return None
    second.z_base = support
    return world.plan_add(t, [first, second]).t_end


def _gap(world: World, lo: float, hi: float) -> float:
    return float(world.rng.uniform(lo, hi))


def _lights(world: World, duration: float, every_s: float) -> None:
    """Occasional changes of the store light: brighter/dimmer areas and a warmer/cooler tint."""
    t = _gap(world, 3.0, every_s)
    while t < duration:
        level = float(world.rng.uniform(0.7, 1.3))
        tint = world.rng.normal(0, 0.05, 3)
        world.plan_light(t, tuple(float(level * (1 + d)) for d in tint), _gap(world, 0.2, 1.5))
        t += _gap(world, every_s * 0.5, every_s * 1.5)


# -------------------------------------------------------------------------------------------------
# Scenarios
# -------------------------------------------------------------------------------------------------


def simple(world: World, duration: float) -> Iterator[float]:
    _lights(world, duration, 25.0)
    pool = [s for s in catalog() if s.look_group is None]
    used: set[str] = set()
    t = _gap(world, 1.0, 2.0)
    adds = 0
    while t < duration - ACTION_S:
        if adds >= 4 and world.rng.random() < 0.25:
            end = _remove(world, t)
        else:
            sku = _choice(world, [s for s in pool if s.sku not in used] or pool)
            end = _add(world, t, sku)
            if end is not None:
                used.add(sku.sku)
                adds += 1
        t = (end if end is not None else t) + _gap(world, 1.2, 3.0)
        yield t


def busy(world: World, duration: float) -> Iterator[float]:
    _lights(world, duration, 20.0)
    pool = list(catalog())
    t = _gap(world, 0.8, 1.5)
    while t < duration - ACTION_S:
        contents = world.planned_contents()
        r = world.rng.random()
        end = None
        if len(contents) >= 12 or (r < 0.3 and contents):
            end = _remove(world, t)
        elif r < 0.45:
            end = _add_two_hands(world, t, pool)
        elif r < 0.55:
            end = _add_pair(world, t, pool)
        if end is None:
            in_basket = [it.sku for it in contents]
            repeat = in_basket and world.rng.random() < 0.35
            end = _add(world, t, _choice(world, in_basket) if repeat else _choice(world, pool))
        end = end if end is not None else t + 1.0
        if world.rng.random() < 0.2 and end + 4.0 < duration - ACTION_S:
            # The shopper pushes the cart to the next shelf before the next product.
            t_roll = end + 0.3
            length = _gap(world, 1.5, 3.0)
            world.plan_roll(t_roll, t_roll + length, accel_rms_g=float(world.rng.uniform(0.02, 0.05)))
            end = t_roll + length
        # Quick hands: the next action may start while the previous hand is still leaving.
        t = end + _gap(world, -0.6, 1.2)
        yield t


def lookalike(world: World, duration: float) -> Iterator[float]:
    _lights(world, duration, 25.0)
    groups = [s for s in catalog() if s.look_group]
    others = [s for s in catalog() if not s.look_group]
    t = _gap(world, 1.0, 2.0)
    while t < duration - ACTION_S:
        end = None
        if world.planned_contents() and world.rng.random() < 0.25:
            end = _remove(world, t)
        if end is None:
            end = _add(world, t, _choice(world, groups if world.rng.random() < 0.8 else others))
        t = (end if end is not None else t + 1.0) + _gap(world, 1.0, 2.5)
        yield t


def _hide_under(world: World, t: float) -> float | None:
    """Slip a small product, concealed by the hand, under a large bag already in the basket."""
    bags = [it for it in world.planned_contents() if it.sku.shape == "bag" and not it.hidden and it.t_rest < t
            and min(it.sprite.size_mm) >= 150 and it.sprite.top_mm >= 60]
    if not bags:
        return None
    bag = bags[int(world.rng.integers(len(bags)))]
    room = bag.sprite.top_mm - 12.0
    # Small enough to vanish under the palm (80 mm across): standing cans.
    small = [s for s in catalog() if s.shape == "cylinder" and s.size_mm[0] <= 75 and s.size_mm[2] <= room]
    if not small:
        return None
    item = world.new_item(_choice(world, small), "upright")
    item.x = bag.x + float(world.rng.normal(0, 8))
    item.y = bag.y + float(world.rng.normal(0, 8))
    item.z_base = bag.z_base
    return world.plan_add(t, [item], side="front", conceal=True, hidden=True, shrink="hidden_item").t_end


def _swap(world: World, t: float) -> float | None:
    """Take a product out and leave a lighter one (its look-alike when it has one) in one visit."""
    options = world.removable(t)
    if not options:
        return None
    old = options[int(world.rng.integers(len(options)))]
    lighter = [s for s in catalog() if s.weight_g < old.sku.weight_g * 0.92 and s.sku != old.sku.sku]
    look = [s for s in lighter if old.sku.look_group and s.look_group == old.sku.look_group]
    if not lighter:
        return None
    new = world.new_item(_choice(world, look or lighter))
    if not world.find_spot(new, near=(old.x, old.y)):
        return None
    hand = world.plan_add(t, [new], shrink="swap")
    hand.keys.pop()  # do not leave yet: go for the old product
    world.plan_remove(hand.keys[-1][0], old, hand=hand, shrink="swap")
    return hand.t_end


def shrink(world: World, duration: float) -> Iterator[float]:
    _lights(world, duration, 30.0)
    big_bags = [s for s in catalog() if s.shape == "bag" and min(s.size_mm[:2]) >= 150 and s.size_mm[2] >= 80]
    pool = [s for s in catalog() if s.shape != "bag" or s in big_bags]
    t = _gap(world, 1.0, 2.0)
    plan = ["bag", "add", "add", "hide", "add", "swap", "add", "hide", "remove", "swap"]
    k = 0
    while t < duration - ACTION_S:
        step = plan[k % len(plan)] if k < len(plan) else str(world.rng.choice(["add", "add", "remove", "hide", "swap"]))
        k += 1
        end = None
        if step == "bag":
            end = _add(world, t, _choice(world, big_bags))
        elif step == "hide":
            end = _hide_under(world, t)
        elif step == "swap":
            end = _swap(world, t)
        elif step == "remove":
            end = _remove(world, t)
        if end is None:
            end = _add(world, t, _choice(world, pool))
        t = (end if end is not None else t + 1.0) + _gap(world, 1.2, 2.5)
        yield t


def bumpy(world: World, duration: float) -> Iterator[float]:
    _lights(world, duration, 12.0)
    for _ in range(int(world.rng.integers(3, 6))):
        item = world.new_item(_choice(world, list(catalog())))
        if world.find_spot(item):
            world.preload(item)
    t = _gap(world, 0.5, 1.5)
    while t < duration - 1.0:
        length = min(_gap(world, 3.0, 8.0), duration - t)
        world.plan_roll(t, t + length, accel_rms_g=float(world.rng.uniform(0.03, 0.08)))
        tb = t + _gap(world, 0.3, 1.5)
        while tb < t + length - 0.3:
            world.plan_bump(tb, accel_g=float(world.rng.uniform(0.1, 0.5)))
            tb += _gap(world, 0.8, 3.0)
        t += length + _gap(world, 0.5, 2.5)
        yield t


def long(world: World, duration: float) -> Iterator[float]:
    pool = list(catalog())
    t = _gap(world, 1.0, 3.0)
    next_light = t
    while t < duration - 10.0:
        if t >= next_light:  # planned as we go: light changes cost no memory up front
            level = float(world.rng.uniform(0.75, 1.25))
            world.plan_light(t, (level, level, level * float(world.rng.uniform(0.95, 1.05))), _gap(world, 0.3, 2.0))
            next_light = t + _gap(world, 30.0, 90.0)
        r = world.rng.random()
        contents = world.planned_contents()
        end = None
        if r < 0.25:
            # Push to the next aisle, with a bump or two.
            length = _gap(world, 5.0, 20.0)
            world.plan_roll(t, t + length, accel_rms_g=float(world.rng.uniform(0.02, 0.06)))
            for _ in range(int(world.rng.integers(0, 3))):
                world.plan_bump(t + _gap(world, 0.5, length - 0.5), accel_g=float(world.rng.uniform(0.1, 0.4)))
            end = t + length
        elif len(contents) >= 14 or r < 0.42:
            end = _remove(world, t)
        elif r < 0.47:
            end = _add_two_hands(world, t, pool)
        elif r < 0.5:
            end = _add_pair(world, t, pool)
        elif r < 0.52:
            end = _hide_under(world, t)
        elif r < 0.54:
            end = _swap(world, t)
        if end is None:
            end = _add(world, t, _choice(world, pool))
        t = (end if end is not None else t + 2.0) + _gap(world, 2.0, 12.0)
        yield t


SCENARIOS: dict[str, Planner] = {"simple": simple, "busy": busy, "lookalike": lookalike, "shrink": shrink, "bumpy": bumpy, "long": long}
DEFAULT_DURATION_S = {"simple": 45.0, "busy": 60.0, "lookalike": 45.0, "shrink": 50.0, "bumpy": 30.0, "long": 1800.0}


def plan(name: str, world: World, duration: float) -> Iterator[float]:
    """The planner of scenario ``name`` for ``world``; raises ValueError naming the choices."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}")
    if not duration > 0:
        raise ValueError(f"duration must be positive seconds, got {duration}")
    return SCENARIOS[name](world, duration)

