"""The simulated cart over time: items, hands, the scale, lighting and cart motion.

Actions are *planned* (by :mod:`caper_edge.sim.scenarios`) before they happen: planning an
action fixes the hand's key frames, schedules the load-cell physics
(:class:`caper_edge.scale.loadcell.LoadCellModel`) and records the ground-truth events. Rendering
then asks :meth:`World.scene_at` for the state at a frame time. Planning runs a few seconds ahead
of rendering and forgets what is past, so a 30-minute session keeps memory flat.

Times inside the world are float seconds since the start of the session; ``t0_ns`` maps them to
the host-clock nanoseconds written into bags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..scale.loadcell import LoadCellModel
from .catalog import Sku
from .geometry import CartGeometry
from .hand import PALM_CENTRE_MM, SKIN_TONES, SLEEVES, hand_sprite
from .packaging import poses, sprite
from .render import Arm, Placed

__all__ = ["HandAction", "Item", "World"]

NS = 1_000_000_000
GRID_MM = 5.0          # support-height grid resolution
HOVER_MM = 110.0       # how high above its target a hand carries an item before lowering it


def min_jerk(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s * s * s * (10 - 15 * s + 6 * s * s)


@dataclass
class Item:
    """One physical unit of a SKU in the world."""

    uid: int
    sku: Sku
    pose: str
    mass_g: float
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    z_base: float = 0.0
    hidden: bool = False
    handle: int | None = None          # load-cell model handle while on the scale
    t_rest: float | None = None        # when it came to rest in the basket
    t_lift: float | None = None        # when it is lifted out (None: stays)

    @property
    def sprite(self):
        return sprite(self.sku.sku, self.pose)

    @property
    def top(self) -> float:
        return self.z_base + self.sprite.top_mm

    def footprint(self) -> np.ndarray:
        """World outline (n, 2) of the footprint."""
        sx, sy = self.sprite.size_mm
        if self.sprite.round:
            t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            local = np.stack([np.cos(t) * sx / 2, np.sin(t) * sy / 2], 1)
        else:
            local = np.array([[-sx / 2, -sy / 2], [sx / 2, -sy / 2], [sx / 2, sy / 2], [-sx / 2, sy / 2]])
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return local @ np.array([[c, s], [-s, c]]) + (self.x, self.y)


@dataclass
class Carry:
    """``item`` moves with the hand from ``t_from`` to ``t_to``: its centre sits at ``offset`` (mm,
    in the hand's frame when the hand's yaw is ``yaw_ref``) and ``dz`` below the palm."""

    item: Item
    t_from: float
    t_to: float
    offset: tuple[float, float]
    dz: float
    yaw_ref: float
    concealed: bool = False       # held inside the hand: its walls do not show either


@dataclass
class HandAction:
    """One hand's visit: key frames of the palm centre (t, x, y, z), what it carries when."""

    hand_id: int
    keys: list[tuple[float, float, float, float]]
    shoulder: tuple[float, float, float]
    skin: int
    sleeve: tuple[int, int, int]
    left: bool
    carries: list[Carry] = field(default_factory=list)

    @property
    def t_start(self) -> float:
        return self.keys[0][0]

    @property
    def t_end(self) -> float:
        return self.keys[-1][0]

    def palm(self, t: float) -> tuple[float, float, float]:
        keys = self.keys
        if t <= keys[0][0]:
            return keys[0][1:]
        for (t0, *p0), (t1, *p1) in zip(keys, keys[1:]):
            if t <= t1:
                s = min_jerk((t - t0) / max(t1 - t0, 1e-9))
                return tuple(a + (b - a) * s for a, b in zip(p0, p1))
        return keys[-1][1:]

    def yaw(self, t: float) -> float:
        x, y, _ = self.palm(t)
        return math.atan2(y - self.shoulder[1], x - self.shoulder[0])


@dataclass
class _Light:
    t: float
    level: tuple[float, float, float]
    ramp_s: float


class World:
    """Everything that exists and happens in one simulated session."""

    def __init__(self, seed: int, geom: CartGeometry | None = None, *, t0_ns: int = 10 * NS, loadcell: LoadCellModel | None = None):
        self.geom = geom or CartGeometry()
        self.rng = np.random.default_rng([seed, 0x70D])
        self.t0_ns = t0_ns
        self.scale = loadcell or LoadCellModel(seed=seed, start_ns=t0_ns, noise_g=1.5, drift_g_per_min=0.4, wander_g=0.3)
        self.items: dict[int, Item] = {}      # every item planned into (or out of) the basket, not yet forgotten
        self.actions: list[HandAction] = []
        self.events: list[dict] = []          # ground truth, in planning order
        self.initial: list[Item] = []
        self._next_id = 1
        self._lights: list[_Light] = [_Light(-1e9, (1.0, 1.0, 1.0), 0.0)]
        self._bumps: list[tuple[float, float, float, float]] = []     # t, amplitude px, freq, direction
        self._rolls: list[tuple[float, float, float]] = []            # t0, t1, amplitude px
        self._jiggles: list[tuple[float, int]] = []                   # t, seed
        self.static_version = 0
        self._static_key: tuple | None = None
        self._exposure = 1.0
        self._last_light_t: float | None = None

    # ------------------------------------------------------------------------------------------
    # Ids and times
    # ------------------------------------------------------------------------------------------

    def new_id(self) -> int:
        uid = self._next_id
        self._next_id += 1
        return uid

    def ns(self, t: float) -> int:
        return self.t0_ns + int(round(t * NS))

    def new_item(self, sku: Sku, pose: str | None = None) -> Item:
        options = poses(sku)
        if pose is None:
            # Mostly the stable pose; boxes sometimes on a side, bottles sometimes standing.
            weights = {"top": 0.8, "side": 0.2, "upright": 0.45, "lying": 0.55, "flat": 1.0}
            if sku.kind in ("can", "tub", "jar"):
                weights.update(upright=0.85, lying=0.15)
            p = np.array([weights[o] for o in options])
            pose = options[int(self.rng.choice(len(options), p=p / p.sum()))]
        mass = max(float(self.rng.normal(sku.weight_g, sku.weight_std_g)), 1.0)
        return Item(self.new_id(), sku, pose, mass)

    # ------------------------------------------------------------------------------------------
    # Where things can go
    # ------------------------------------------------------------------------------------------

    def resting_at(self, t: float) -> list[Item]:
        return [it for it in self.items.values() if it.t_rest is not None and it.t_rest <= t and (it.t_lift is None or t < it.t_lift)]

    def planned_contents(self) -> list[Item]:
        """Items that will be in the basket once every planned action is done."""
        return [it for it in self.items.values() if it.t_rest is not None and it.t_lift is None]

    def _grid(self, items: list[Item]) -> np.ndarray:
        hx, hy = self.geom.floor_half_mm
        grid = np.zeros((int(2 * hy / GRID_MM), int(2 * hx / GRID_MM)), np.float32)
        for it in sorted(items, key=lambda i: i.top):
            if it.hidden:
                continue
            cells = np.round((it.footprint() + (hx, hy)) / GRID_MM).astype(np.int32)
            mask = np.zeros(grid.shape, np.uint8)
            cv2.fillConvexPoly(mask, cells, 1)
            grid[mask > 0] = np.maximum(grid[mask > 0], it.top)
        return grid

    def support(self, item: Item, grid: np.ndarray | None = None) -> float | None:
        """Height item would rest at in its current (x, y, yaw), or None if it does not fit there
        (off the floor, unstable overhang, or sticking out above the rim)."""
        g = self.geom
        grid = self._grid(self.planned_contents()) if grid is None else grid
        hx, hy = g.floor_half_mm
        fp = item.footprint()
        if (np.abs(fp[:, 0]) > hx - 3).any() or (np.abs(fp[:, 1]) > hy - 3).any():
            return None
        cells = np.round((fp + (hx, hy)) / GRID_MM).astype(np.int32)
        mask = np.zeros(grid.shape, np.uint8)
        cv2.fillConvexPoly(mask, cells, 1)
        under = grid[mask > 0]
        if under.size == 0:
            return None
        support = float(under.max())
        if np.mean(under >= support - 15.0) < 0.35 or support + item.sprite.top_mm > g.rim_height_mm - 25:
            return None
        return support

    def find_spot(self, item: Item, *, allow_stack: bool = True, tries: int = 40, near: tuple[float, float] | None = None) -> bool:
        """Choose a resting pose for ``item`` (x, y, yaw, z_base) among the planned contents:
        free floor when there is some, else on top of what is there (stable, below the rim)."""
        grid = self._grid(self.planned_contents())
        hx, hy = self.geom.floor_half_mm
        best = None
        for _ in range(tries):
            # People put things down roughly square to the basket, not at any angle.
            item.yaw = float(self.rng.integers(4) * math.pi / 2 + self.rng.normal(0, 0.3))
            c, s = abs(math.cos(item.yaw)), abs(math.sin(item.yaw))
            sx, sy = item.sprite.size_mm
            margin_x, margin_y = min((c * sx + s * sy) / 2 + 4, hx - 5), min((s * sx + c * sy) / 2 + 4, hy - 5)
            if near is not None:
                item.x = float(np.clip(near[0] + self.rng.normal(0, 60), -hx + margin_x, hx - margin_x))
                item.y = float(np.clip(near[1] + self.rng.normal(0, 60), -hy + margin_y, hy - margin_y))
            else:
                item.x = float(self.rng.uniform(-hx + margin_x, hx - margin_x))
                item.y = float(self.rng.uniform(-hy + margin_y, hy - margin_y))
            support = self.support(item, grid)
            if support is None or (support > 0 and not allow_stack):
                continue
            score = support + float(self.rng.uniform(0, 5))
            if best is None or score < best[0]:
                best = (score, item.x, item.y, item.yaw, support)
            if support == 0:
                break
        if best is None:
            return False
        _, item.x, item.y, item.yaw, item.z_base = best
        return True

    def removable(self, t: float) -> list[Item]:
        """Items at rest by ``t`` that nothing placed later lies on or hides under."""
        out = []
        contents = self.planned_contents()
        for it in contents:
            if it.t_rest > t - 0.5 or it.hidden:
                continue
            blocked = False
            poly = it.footprint().astype(np.float32)
            for other in contents:
                if other is it or other.t_rest < it.t_rest:
                    continue
                if _polygons_overlap(poly, other.footprint().astype(np.float32)):
                    blocked = True
                    break
            if not blocked:
                out.append(it)
        return out

    # ------------------------------------------------------------------------------------------
    # Hands
    # ------------------------------------------------------------------------------------------

    def _new_hand(self, side: str | None, entry: tuple[float, float] | None = None) -> tuple[HandAction, tuple[float, float, float]]:
        """A hand entering from ``side`` ("front", "left", "right"); returns it and its entry point."""
        g = self.geom
        side = side or str(self.rng.choice(["front", "front", "left", "right"]))
        rx, ry = g.rim_half_mm
        out_z = g.rim_height_mm + float(self.rng.uniform(120, 200))
        if side == "front":
            sx = float(self.rng.uniform(-200, 200))
            shoulder = (sx, ry + 420.0, 560.0)
            start = (float(np.clip(sx * 0.6 + self.rng.normal(0, 40), -rx + 60, rx - 60)), ry + 130.0, out_z)
        else:
            sgn = -1.0 if side == "left" else 1.0
            sy = float(self.rng.uniform(0, 200))
            shoulder = (sgn * (rx + 420.0), sy, 560.0)
            start = (sgn * (rx + 130.0), float(np.clip(sy * 0.5 + self.rng.normal(0, 40), -ry + 60, ry - 60)), out_z)
        if entry is not None:
            start = (entry[0], entry[1], out_z)
        hand = HandAction(
            hand_id=self.new_id(),
            keys=[],
            shoulder=shoulder,
            skin=int(self.rng.integers(len(SKIN_TONES))),
            sleeve=SLEEVES[int(self.rng.integers(len(SLEEVES)))],
            left=bool(side == "left" or (side == "front" and shoulder[0] < 0)),
        )
        return hand, start

    def _speed_s(self, a: tuple[float, float, float], b: tuple[float, float, float], slow: float = 1.0) -> float:
        dist = math.dist(a, b)
        return slow * (0.28 + dist / float(self.rng.uniform(650, 1000)))

    @staticmethod
    def _palm_over(item: Item, hand: HandAction, carry_offset: tuple[float, float]) -> tuple[float, float]:
        """Palm position that puts ``item`` at ``carry_offset`` in the hand's frame; the hand's yaw
        points from the shoulder to the palm, so solve approximately (two fixed-point steps)."""
        px, py = item.x, item.y
        for _ in range(3):
            yaw = math.atan2(py - hand.shoulder[1], px - hand.shoulder[0])
            c, s = math.cos(yaw), math.sin(yaw)
            ox, oy = carry_offset
            px = item.x - (c * ox - s * oy)
            py = item.y - (s * ox + c * oy)
        return px, py

    # ------------------------------------------------------------------------------------------
    # Planning: adds, removals, swaps
    # ------------------------------------------------------------------------------------------

    def plan_add(self, t: float, items: list[Item], *, side: str | None = None, conceal: bool = False,
                 hidden: bool = False, shrink: str | None = None) -> HandAction:
        """A hand brings ``items`` (already given resting poses, one or two units side by side) in
        from ``side`` and puts them down at once. Returns the hand action (times in seconds)."""
        g = self.geom
        hand, start = self._new_hand(side)
        lead = items[0]
        top = max(it.top for it in items)
        offset = (12.0, 0.0) if conceal else (22.0, 0.0)  # concealed: right under the palm
        palm_xy = self._palm_over(lead, hand, offset)
        grip_z = top + 2.0
        above = (palm_xy[0], palm_xy[1], grip_z + HOVER_MM)
        contact = (palm_xy[0], palm_xy[1], grip_z)
        t1 = t + self._speed_s(start, above)
        t2 = t1 + float(self.rng.uniform(0.25, 0.45))
        place_s = float(self.rng.uniform(0.35, 0.7))
        t3 = t2 + place_s
        t4 = t3 + float(self.rng.uniform(0.25, 0.4))
        exit_ = (start[0] + float(self.rng.normal(0, 30)), start[1] + float(self.rng.normal(0, 30)), start[2])
        t5 = t4 + self._speed_s(above, exit_)
        hand.keys = [(t, *start), (t1, *above), (t2, *contact), (t3, *contact), (t4, *above), (t5, *exit_)]
        mass = 0.0
        for it in items:
            it.hidden = hidden
            it.t_rest = t3
            hand.carries.append(self._carry(hand, it, t, t3, t2, contact))
            hand.carries[-1].concealed = conceal
            ev = self.scale.place(self.ns(t2), it.mass_g, g.floor_uv(it.x, it.y), duration_s=place_s)
            it.handle = ev.item
            self.items[it.uid] = it
            mass += it.mass_g
            settled = ev.t_rest_ns
        t_in = self._crossing(hand, t, t2, inward=True)
        self.actions.append(hand)
        self.events.append(self._event("item_added", items, t_in, t3, settled, hand, mass, hidden=hidden, shrink=shrink))
        return hand

    def plan_remove(self, t: float, item: Item, *, side: str | None = None, shrink: str | None = None, hand: HandAction | None = None) -> HandAction:
        """A hand comes for ``item``, grips it, lifts it out. With ``hand``, the removal continues
        that hand's visit (a swap) instead of starting a new one."""
        g = self.geom
        own_hand = hand is None
        if hand is None:
            hand, start = self._new_hand(side)
            hand.keys = [(t, *start)]
        else:
            start = tuple(hand.keys[0][1:])
        t_prev, *p_prev = hand.keys[-1]
        palm_xy = self._palm_over(item, hand, (22.0, 0.0))
        grip_z = item.top + 2.0
        above = (palm_xy[0], palm_xy[1], grip_z + HOVER_MM)
        contact = (palm_xy[0], palm_xy[1], grip_z)
        t1 = max(t, t_prev) + self._speed_s(tuple(p_prev), above)
        t2 = t1 + float(self.rng.uniform(0.25, 0.45))
        grip_s = float(self.rng.uniform(0.35, 0.65))
        t_lift = t2 + grip_s / 2
        t3 = t2 + grip_s
        lifted = (contact[0], contact[1], contact[2] + 40.0)
        t4 = t3 + float(self.rng.uniform(0.25, 0.4))
        exit_ = (start[0] + float(self.rng.normal(0, 30)), start[1] + float(self.rng.normal(0, 30)), start[2])
        t5 = t4 + self._speed_s(above, exit_)
        hand.keys += [(t1, *above), (t2, *contact), (t_lift, *contact), (t3, *lifted), (t4, *above), (t5, *exit_)]
        hand.carries.append(self._carry(hand, item, t_lift, t5, t2, contact))
        ev = self.scale.remove(self.ns(t2), item.handle, duration_s=grip_s)
        item.t_lift = t_lift
        t_out = self._crossing(hand, t_lift, t5, inward=False)
        if own_hand:
            self.actions.append(hand)
        self.events.append(self._event("item_removed", [item], t_lift, t_out, ev.t_rest_ns, hand, -item.mass_g, shrink=shrink))
        return hand

    @staticmethod
    def _carry(hand: HandAction, item: Item, t_from: float, t_to: float, t_contact: float, contact) -> Carry:
        """The item's pose relative to the palm, fixed at the moment of contact."""
        yaw = hand.yaw(t_contact)
        c, s = math.cos(yaw), math.sin(yaw)
        dx, dy = item.x - contact[0], item.y - contact[1]
        return Carry(item, t_from, t_to, (c * dx + s * dy, -s * dx + c * dy), item.z_base - contact[2], yaw)

    def _crossing(self, hand: HandAction, ta: float, tb: float, *, inward: bool) -> float:
        """When the carried load crosses the rim (inward: first time inside; else last time inside)."""
        ts = np.arange(ta, tb + 1e-9, 0.01)
        inside = [self.geom.inside_rim(*hand.palm(t)[:2]) for t in ts]
        if inward:
            idx = next((i for i, v in enumerate(inside) if v), len(ts) - 1)
        else:
            idx = next((i for i in range(len(ts) - 1, -1, -1) if inside[i]), 0)
            idx = min(idx + 1, len(ts) - 1)
        return float(ts[idx])

    def _event(self, kind: str, items: list[Item], t_start: float, t_rest: float, settled_ns: int, hand: HandAction,
               delta_g: float, *, hidden: bool = False, shrink: str | None = None) -> dict:
        lead = items[0]
        return {
            "type": kind,
            "sku": lead.sku.sku,
            "qty": len(items),
            "t_start_ns": self.ns(t_start),
            "t_rest_ns": self.ns(t_rest),
            "t_settled_ns": int(settled_ns),
            "visible": not hidden,
            "shrink": shrink,
            "weight_g": round(delta_g, 2),
            "item_ids": [it.uid for it in items],
            "hand_id": hand.hand_id,
            "pos_mm": [round(lead.x, 1), round(lead.y, 1), round(lead.z_base, 1)],
        }

    def preload(self, item: Item) -> None:
        """An item already in the basket when the session starts (no event)."""
        item.t_rest = -1e9
        item.handle = self.scale.preload(item.mass_g, self.geom.floor_uv(item.x, item.y))
        self.items[item.uid] = item
        self.initial.append(item)

    # ------------------------------------------------------------------------------------------
    # Cart motion and light
    # ------------------------------------------------------------------------------------------

    def plan_bump(self, t: float, accel_g: float) -> None:
        self.scale.bump(self.ns(t), accel_g=accel_g, duration_s=0.6)
        amp = 14.0 * accel_g  # image shake in px: the camera mast flexes
        self._bumps.append((t, amp, float(self.rng.uniform(5, 9)), float(self.rng.uniform(0, 2 * math.pi))))
        if accel_g > 0.15:
            self._jiggles.append((t + 0.1, int(self.rng.integers(1 << 30))))

    def plan_roll(self, t0: float, t1: float, accel_rms_g: float = 0.04) -> None:
        self.scale.roll(self.ns(t0), self.ns(t1), accel_rms_g=accel_rms_g)
        self._rolls.append((t0, t1, 12.0 * accel_rms_g))

    def plan_light(self, t: float, level: tuple[float, float, float], ramp_s: float) -> None:
        self._lights.append(_Light(t, level, ramp_s))
        self._lights.sort(key=lambda light: light.t)

    def light_at(self, t: float) -> np.ndarray:
        """Scene light level per RGB channel (1 = the store's usual light)."""
        level = np.array(self._lights[0].level)
        for light in self._lights[1:]:
            if light.t > t:
                break
            s = min_jerk((t - light.t) / max(light.ramp_s, 1e-6))
            level = level + (np.array(light.level) - level) * s
        for t0, t1, _ in self._rolls:
            if t0 <= t < t1:  # passing under the store's ceiling lights
                level = level * (1.0 + 0.07 * math.sin(2 * math.pi * (t - t0) / 2.3))
        return level

    def gain_at(self, t: float) -> tuple[float, float, float]:
        """Scene light x the camera's auto-exposure, which follows the mean level with a 0.6 s lag
        and compensates 80 % of it (call with increasing t)."""
        level = self.light_at(t)
        mean = float(np.mean(level))
        target = mean ** -0.8
        if self._last_light_t is None:
            self._exposure = target
        else:
            dt = max(t - self._last_light_t, 0.0)
            self._exposure += (target - self._exposure) * (1 - math.exp(-dt / 0.6))
        self._last_light_t = t
        return tuple(float(v * self._exposure) for v in level)

    def shake_at(self, t: float) -> tuple[float, float]:
        """Image shake (dx, dy) in px from bumps and rolling."""
        dx = dy = 0.0
        for tb, amp, f, ang in self._bumps:
            if 0 <= t - tb < 0.8:
                a = amp * math.exp(-(t - tb) / 0.18) * math.sin(2 * math.pi * f * (t - tb))
                dx += a * math.cos(ang)
                dy += a * math.sin(ang)
        for t0, t1, amp in self._rolls:
            if t0 <= t < t1:
                dx += amp * (math.sin(2 * math.pi * 7.3 * t) + 0.5 * math.sin(2 * math.pi * 11.9 * t + 1.0))
                dy += amp * (math.sin(2 * math.pi * 5.1 * t + 2.0) + 0.5 * math.sin(2 * math.pi * 13.7 * t))
        return dx, dy

    def moving_at(self, t: float) -> bool:
        return any(t0 <= t < t1 for t0, t1, _ in self._rolls) or any(0 <= t - tb < 0.8 for tb, *_ in self._bumps)

    # ------------------------------------------------------------------------------------------
    # State for the renderer
    # ------------------------------------------------------------------------------------------

    def _apply_jiggles(self, t: float) -> int:
        """Shift resting items a little after hard bumps (once each); returns how many applied."""
        done = 0
        while self._jiggles and self._jiggles[0][0] <= t:
            _, seed = self._jiggles.pop(0)
            r = np.random.default_rng(seed)
            g = self.geom
            for it in self.resting_at(t):
                if it.hidden:
                    continue
                it.x = float(np.clip(it.x + r.normal(0, 1.5), -g.floor_half_mm[0], g.floor_half_mm[0]))
                it.y = float(np.clip(it.y + r.normal(0, 1.5), -g.floor_half_mm[1], g.floor_half_mm[1]))
                it.yaw += float(r.normal(0, 0.02))
            done += 1
        return done

    def scene_at(self, t: float, fps: float) -> tuple[tuple, list[Placed], list[Placed]]:
        """(static key, resting items, moving things) at ``t``. The static key changes exactly when
        the resting set or a resting pose changes, so the caller re-renders the static layer then."""
        if self._apply_jiggles(t):
            self.static_version += 1
        resting = self.resting_at(t)
        key = (self.static_version, tuple(sorted(it.uid for it in resting)))
        static = [Placed(it.uid, "item", it.sku.sku, it.sprite, it.x, it.y, it.z_base, it.yaw, shadow=not it.hidden) for it in resting]
        moving: list[Placed] = []
        dt = 1.0 / fps
        for hand in self.actions:
            if not hand.t_start <= t < hand.t_end:
                continue
            moving.extend(self._hand_parts(hand, t, dt))
        return key, static, moving

    def _hand_parts(self, hand: HandAction, t: float, dt: float) -> list[Placed]:
        g = self.geom
        px, py, pz = hand.palm(t)
        qx, qy, qz = hand.palm(t - dt)
        u1, v1 = g.project(px, py, pz)
        u0, v0 = g.project(qx, qy, qz)
        vel = (u1 - u0, v1 - v0)
        yaw = hand.yaw(t)
        c, s = math.cos(yaw), math.sin(yaw)
        parts = []
        for carry in hand.carries:
            if not carry.t_from <= t < carry.t_to:
                continue
            it = carry.item
            ox, oy = carry.offset
            x, y = px + c * ox - s * oy, py + s * ox + c * oy
            z_base = pz + carry.dz
            if carry.concealed:
                # Cupped in the hand: keep it on the camera's line of sight behind the palm, so
                # perspective does not slide it out from under a hand that is nearer the camera.
                k = (g.camera_height_mm - z_base - it.sprite.top_mm) / (g.camera_height_mm - pz - 34.0)
                x, y = x * k, y * k
            in_basket = g.inside_rim(x, y) and z_base < g.rim_height_mm + 40
            parts.append(Placed(it.uid, "item", it.sku.sku, it.sprite, x, y, z_base, it.yaw + yaw - carry.yaw_ref, vel,
                                not carry.concealed, in_basket))
        sp = hand_sprite(hand.skin, hand.left)
        # Sprite centre from the palm centre: the sprite's x axis points along the fingers.
        cx_mm, cy_mm = sp.size_mm[0] / 2 - PALM_CENTRE_MM[0], sp.size_mm[1] / 2 - sp.palm_centre_mm[1]
        hx, hy = px + c * cx_mm - s * cy_mm, py + s * cx_mm + c * cy_mm
        wrist = (px - c * 55.0, py - s * 55.0, pz + 12.0)
        arm = Arm(wrist, hand.shoulder, hand.sleeve, SKIN_TONES[hand.skin % len(SKIN_TONES)])
        in_basket = g.inside_rim(px, py) and pz < g.rim_height_mm + 120
        parts.append(Placed(hand.hand_id, "hand", None, sp, hx, hy, pz, yaw, vel, False, in_basket, arm))
        return parts

    def forget_before(self, t: float) -> None:
        """Drop what can no longer matter (finished hands, items that left, old events)."""
        self.actions = [a for a in self.actions if a.t_end > t]
        self.items = {k: it for k, it in self.items.items() if it.t_lift is None or it.t_lift > t - 10.0}
        self._bumps = [b for b in self._bumps if b[0] > t - 1.0]
        self._rolls = [r for r in self._rolls if r[1] > t]
        settled = [light for light in self._lights if light.t + light.ramp_s <= t]
        if len(settled) > 1:  # only the last settled level matters any more
            last = settled[-1]
            self._lights = [_Light(-1e9, last.level, 0.0)] + [light for light in self._lights if light.t + light.ramp_s > t]


def _polygons_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    inter, _ = cv2.intersectConvexConvex(cv2.convexHull(a), cv2.convexHull(b))
    return inter > 1.0
