"""The simulated store's product catalog: 48 SKUs with shape, size, weight, price and a look.

Products are hand-listed with plausible sizes and weights; their packaging is generated from a
per-design seed (:mod:`caper_edge.sim.packaging`). Two kinds of deliberate confusion are built in:

* **look-alike groups** (``look_group``): the same packaging design, colours and nearly the same
  size, but a different weight (regular vs light, 400 g vs 500 g). Vision alone cannot tell them
  apart reliably; the weight can.
* **weigh-alike groups** (``weight_group``): the same nominal weight within a few grams, but
  different packaging. The weight alone cannot tell them apart; vision can.

The catalog is fixed (it does not depend on a scenario seed): it is the store, not the session.
``catalog_json()`` is what the simulator writes on ``/catalog``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Literal

__all__ = ["CATALOG_VERSION", "DISTRACTOR_PREFIX", "Sku", "catalog", "catalog_json", "by_id", "distractors", "lookup"]

#: Bumped whenever products or their looks change (bags record it on /catalog).
CATALOG_VERSION = 1

Shape = Literal["box", "cylinder", "bag"]


@dataclass(frozen=True)
class Sku:
    """One product.

    ``size_mm``: box (length, width, height) lying on its largest face; cylinder (diameter,
    diameter, height) standing; bag (length, width, thickness) lying flat.
    ``weight_g``/``weight_std_g``: mean and standard deviation of one unit's mass in grams.
    ``design``: packaging design seed (shared inside a look-alike group); ``variant``: the small
    print that differs inside a group; ``material`` drives gloss and depth holes.
    """

    sku: str
    name: str
    shape: Shape
    size_mm: tuple[float, float, float]
    weight_g: float
    weight_std_g: float
    price: float
    material: str
    design: int
    colors: tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]
    pattern: str
    variant: str = ""
    look_group: str | None = None
    weight_group: str | None = None
    kind: str = field(default="")  # bottle / can / jar / tub / carton: top-view detail of cylinders

    def to_json(self) -> dict:
        d = asdict(self)
        d["size_mm"] = list(self.size_mm)
        d["colors"] = [list(c) for c in self.colors]
        return d


# name, shape, size_mm, weight g, std g, price, material, colours (base, accent, label), pattern,
# variant, look group, weight group, cylinder kind
_R, _W, _B, _K = (200, 30, 35), (245, 245, 240), (30, 60, 160), (25, 25, 25)
_PRODUCTS: list[tuple] = [
    # --- look-alike group A: cola cans (same can design; regular vs zero vs large) -------------
    ("Fizz Cola 330 ml can", "cylinder", (66, 66, 115), 350, 3, 0.89, "metal", (_R, _W, _K), "wave", "CLASSIC", "A", None, "can"),
    ("Fizz Cola 250 ml can", "cylinder", (66, 66, 92), 272, 3, 0.79, "metal", (_R, _W, _K), "wave", "250ML", "A", None, "can"),
    ("Fizz Cola 500 ml can", "cylinder", (66, 66, 168), 520, 4, 1.29, "metal", (_R, _W, _K), "wave", "500ML", "A", None, "can"),
    # --- look-alike group B: cereal boxes ---------------------------------------------------
    ("Sunny Flakes 375 g", "box", (280, 190, 60), 420, 6, 2.79, "cardboard", ((240, 190, 40), (210, 60, 30), _W), "rays", "375 g", "B", None, ""),
    ("Sunny Flakes 500 g", "box", (290, 195, 70), 560, 7, 3.49, "cardboard", ((240, 190, 40), (210, 60, 30), _W), "rays", "500 g", "B", None, ""),
    # --- look-alike group C: pasta -------------------------------------------------------------
    ("Nonna Spaghetti 500 g", "box", (260, 75, 30), 515, 4, 1.19, "cardboard", ((20, 70, 150), (250, 250, 250), (230, 200, 60)), "window", "SPAGHETTI", "C", "500", ""),
    ("Nonna Spaghetti 1 kg", "box", (265, 95, 40), 1020, 6, 2.19, "cardboard", ((20, 70, 150), (250, 250, 250), (230, 200, 60)), "window", "1 KG", "C", "1000", ""),
    # --- look-alike group D: yoghurt tubs --------------------------------------------------------
    ("Alpine Yoghurt 500 g", "cylinder", (95, 95, 85), 530, 5, 1.49, "plastic", ((250, 250, 250), (60, 140, 220), (60, 140, 220)), "dots", "NATURAL", "D", None, "tub"),
    ("Alpine Yoghurt Light 400 g", "cylinder", (95, 95, 85), 425, 5, 1.59, "plastic", ((250, 250, 250), (60, 140, 220), (60, 140, 220)), "dots", "LIGHT", "D", None, "tub"),
    # --- look-alike group E: coffee bags ----------------------------------------------------------
    ("Roastery Coffee Beans 250 g", "bag", (190, 110, 55), 262, 3, 4.99, "film", ((60, 35, 25), (200, 150, 60), (230, 220, 200)), "stripes", "250 g", "E", None, ""),
    ("Roastery Coffee Beans 500 g", "bag", (215, 125, 65), 515, 4, 8.99, "film", ((60, 35, 25), (200, 150, 60), (230, 220, 200)), "stripes", "500 g", "E", "500", ""),
    # --- look-alike group F: tomato cans ----------------------------------------------------------
    ("Rosso Chopped Tomatoes 400 g", "cylinder", (73, 73, 110), 455, 4, 0.79, "metal", ((190, 30, 30), (40, 130, 50), (250, 240, 220)), "band", "400 g", "F", None, "can"),
    ("Rosso Chopped Tomatoes 200 g", "cylinder", (73, 73, 62), 238, 3, 0.59, "metal", ((190, 30, 30), (40, 130, 50), (250, 240, 220)), "band", "200 g", "F", None, "can"),
    ("Rosso Tomato Passata 500 g", "cylinder", (73, 73, 118), 555, 4, 0.99, "metal", ((190, 30, 30), (40, 130, 50), (250, 240, 220)), "band", "PASSATA", "F", None, "can"),
    # --- look-alike group G: water bottles --------------------------------------------------------
    ("Glacier Water 500 ml", "cylinder", (65, 65, 210), 514, 4, 0.49, "plastic", ((120, 190, 235), (20, 80, 170), _W), "wave", "STILL", "G", "500", "bottle"),
    ("Glacier Water 750 ml", "cylinder", (70, 70, 245), 775, 5, 0.69, "plastic", ((120, 190, 235), (20, 80, 170), _W), "wave", "750 ML", "G", None, "bottle"),
    # --- weigh-alike group "500": 500 g of different things (members above carry it too) --------
    ("Golden Rice 500 g", "bag", (200, 120, 50), 512, 4, 1.69, "film", ((250, 245, 230), (200, 160, 40), (160, 40, 40)), "checker", "", None, "500", ""),
    ("Sugar Crystal 500 g", "box", (140, 90, 55), 510, 4, 0.99, "cardboard", ((245, 245, 250), (30, 90, 200), (30, 90, 200)), "plain", "", None, "500", ""),
    ("Brown Lentils 500 g", "bag", (180, 120, 45), 508, 4, 1.89, "film", ((120, 80, 40), (240, 230, 200), (40, 100, 40)), "window", "", None, "500", ""),
    # --- weigh-alike group "1000": 1 kg --------------------------------------------------------------
    ("Mill Flour 1 kg", "bag", (190, 110, 80), 1012, 7, 0.89, "paper", ((245, 240, 225), (200, 40, 40), (40, 40, 40)), "band", "", None, "1000", ""),
    ("Orchard Apple Juice 1 L", "box", (195, 95, 60), 1018, 6, 1.99, "cardboard", ((90, 170, 60), (240, 60, 40), _W), "rays", "", None, "1000", ""),
    ("Fresh Milk 1 L", "box", (195, 95, 70), 1022, 6, 1.09, "cardboard", ((245, 250, 255), (20, 100, 200), (20, 100, 200)), "dots", "", None, "1000", ""),
    ("Basmati Rice 1 kg", "bag", (240, 150, 60), 1015, 7, 2.99, "film", ((40, 110, 60), (230, 200, 90), _W), "stripes", "", None, "1000", ""),
    # --- weigh-alike group "250": 250 g ------------------------------------------------------------
    ("Dairy Butter 250 g", "box", (120, 65, 50), 252, 2, 2.29, "paper", ((250, 220, 90), (30, 90, 40), (30, 90, 40)), "plain", "", None, "250", ""),
    ("Green Tea 100 bags", "box", (160, 110, 70), 255, 3, 3.49, "cardboard", ((40, 140, 70), (250, 250, 240), (200, 170, 60)), "window", "", None, "250", ""),
    ("Choco Cookies 250 g", "box", (200, 70, 50), 258, 3, 1.79, "cardboard", ((90, 50, 30), (240, 200, 120), (220, 40, 40)), "dots", "", None, "250", ""),
    # --- weigh-alike group "150": small bags ----------------------------------------------------------
    ("Crispy Chips Salted 150 g", "bag", (290, 200, 70), 158, 3, 1.99, "film", ((230, 40, 40), (250, 220, 60), _W), "rays", "", None, "150", ""),
    ("Crispy Chips Paprika 150 g", "bag", (290, 200, 70), 157, 3, 1.99, "film", ((240, 130, 20), (140, 30, 20), _W), "rays", "", None, "150", ""),
    ("Trail Nut Mix 150 g", "bag", (180, 130, 40), 156, 2, 3.29, "film", ((80, 120, 60), (230, 180, 100), (250, 250, 240)), "checker", "", None, "150", ""),
    # --- singles: everything else ------------------------------------------------------------------------
    ("Tuna in Oil 160 g", "cylinder", (85, 85, 38), 185, 2, 1.49, "metal", ((30, 90, 170), (240, 240, 240), (240, 200, 40)), "band", "", None, None, "can"),
    ("Strawberry Jam 450 g", "cylinder", (80, 80, 105), 690, 6, 2.49, "glass", ((180, 20, 50), (250, 245, 235), (250, 245, 235)), "checker", "", None, None, "jar"),
    ("Forest Honey 500 g", "cylinder", (78, 78, 115), 760, 6, 5.99, "glass", ((230, 160, 30), (90, 50, 20), (250, 240, 210)), "dots", "", None, None, "jar"),
    ("Tomato Ketchup 500 ml", "cylinder", (70, 70, 190), 590, 5, 1.89, "plastic", ((200, 20, 20), (250, 250, 250), (40, 120, 40)), "wave", "", None, None, "bottle"),
    ("Olive Oil 750 ml", "cylinder", (72, 72, 280), 1240, 8, 7.49, "glass", ((70, 90, 30), (230, 210, 120), (30, 30, 30)), "plain", "", None, None, "bottle"),
    ("Dish Soap 500 ml", "cylinder", (60, 60, 210), 560, 5, 1.39, "plastic", ((40, 200, 90), (250, 250, 250), (20, 80, 170)), "wave", "", None, None, "bottle"),
    ("Laundry Liquid 1.5 L", "box", (230, 110, 150), 1620, 12, 8.99, "plastic", ((240, 120, 20), (30, 60, 150), _W), "rays", "", None, None, ""),
    ("Herbal Shampoo 300 ml", "cylinder", (58, 58, 190), 345, 3, 3.19, "plastic", ((140, 60, 160), (250, 250, 250), (250, 200, 60)), "dots", "", None, None, "bottle"),
    ("Mint Toothpaste 75 ml", "box", (190, 45, 38), 128, 2, 1.69, "cardboard", ((250, 250, 250), (30, 150, 200), (200, 30, 40)), "band", "", None, None, ""),
    ("Kitchen Towels 4 rolls", "bag", (240, 230, 220), 480, 8, 3.99, "film", ((250, 250, 250), (80, 160, 220), (80, 160, 220)), "dots", "", None, None, ""),
    ("Free Range Eggs 10", "box", (250, 115, 70), 640, 15, 3.29, "paper", ((170, 150, 120), (60, 120, 60), (250, 245, 230)), "plain", "", None, None, ""),
    ("Country Bread 500 g", "bag", (300, 125, 110), 505, 12, 2.49, "paper", ((200, 160, 110), (120, 70, 30), (250, 240, 220)), "window", "", None, None, ""),
    ("Apples 1 kg bag", "bag", (260, 190, 90), 1030, 45, 2.99, "film", ((120, 200, 80), (200, 40, 40), _W), "checker", "", None, None, ""),
    ("Bananas 5 pcs", "bag", (240, 160, 60), 820, 60, 1.59, "film", ((250, 220, 50), (60, 40, 20), (60, 120, 40)), "stripes", "", None, None, ""),
    ("Dark Chocolate 100 g", "box", (160, 75, 12), 104, 1, 1.99, "paper", ((50, 30, 25), (200, 170, 90), (200, 170, 90)), "plain", "", None, None, ""),
    ("Crackers 200 g", "box", (220, 110, 50), 212, 3, 1.49, "cardboard", ((230, 140, 30), (120, 60, 20), _W), "checker", "", None, None, ""),
    ("Corn Tortillas 8 pcs", "bag", (220, 220, 25), 330, 6, 2.19, "film", ((240, 200, 60), (30, 130, 60), (200, 40, 30)), "band", "", None, None, ""),
    ("Baby Wipes 64", "bag", (200, 110, 60), 420, 6, 2.59, "film", ((250, 250, 250), (130, 200, 230), (240, 130, 170)), "wave", "", None, None, ""),
    ("Energy Drink 250 ml can", "cylinder", (53, 53, 134), 275, 2, 1.39, "metal", ((30, 30, 40), (60, 220, 60), (200, 200, 210)), "rays", "", None, None, "can"),
]

def _build() -> tuple[Sku, ...]:
    out = []
    designs: dict[str, int] = {}
    for i, row in enumerate(_PRODUCTS):
        name, shape, size, weight, std, price, material, colors, pattern, variant, look, wgroup, kind = row
        # Members of a look-alike group share the design seed: identical artwork but the variant text.
        design = designs.setdefault(look, 1000 + i) if look else 1000 + i
        out.append(
            Sku(
                sku=f"SKU-{i + 1:04d}",
                name=name,
                shape=shape,
                size_mm=tuple(float(s) for s in size),
                weight_g=float(weight),
                weight_std_g=float(std),
                price=float(price),
                material=material,
                design=design,
                colors=tuple(tuple(int(c) for c in col) for col in colors),
                pattern=pattern,
                variant=variant,
                look_group=f"look-{look}" if look else None,
                weight_group=f"weight-{wgroup}g" if wgroup else None,
                kind=kind,
            )
        )
    return tuple(out)


@cache
def catalog() -> tuple[Sku, ...]:
    """Every SKU of the simulated store, in a fixed order."""
    return _build()


@cache
def by_id() -> dict[str, Sku]:
    return {s.sku: s for s in catalog()}


#: Id prefix of the products from outside the store (:func:`distractors`); crops/<id>/ folders
#: with it are distractor identities to the embedder's training.
DISTRACTOR_PREFIX = "RND-"
# Distractor products drawn in this process (distractors()), by id: the renderer finds them here.
_DISTRACTORS: dict[str, Sku] = {}


def lookup(sku_id: str) -> Sku:
    """The store's SKU or a distractor drawn in this process; KeyError naming the id otherwise."""
    sku = by_id().get(sku_id) or _DISTRACTORS.get(sku_id)
    if sku is None:
        raise KeyError(f"unknown SKU {sku_id!r}: not in the catalog (SKU-0001..SKU-{len(catalog()):04d}) "
                       "and not a distractor drawn in this process")
    return sku


_MATERIALS = {"box": ("cardboard", "paper", "plastic"), "cylinder": ("metal", "glass", "plastic"), "bag": ("film", "paper")}
_KINDS = ("can", "bottle", "jar", "tub")
_PATTERN_NAMES = ("wave", "rays", "dots", "stripes", "checker", "band", "window", "plain")
_SYLLABLES = ("ka", "lo", "mi", "ra", "ven", "to", "su", "bel", "dor", "fi", "na", "gro", "pe", "zu", "lin", "ma", "co", "tre")
_VARIANTS = ("", "", "", "250 g", "500 g", "1 KG", "LIGHT", "BIO", "XL", "MINI", "CLASSIC", "ZERO")


def distractors(n: int, seed: int) -> tuple[Sku, ...]:
    """``n`` products that are not in the store, drawn from the same vocabulary of shapes, sizes,
    materials, colours, patterns and print as the catalog: ids ``RND-<seed>-<k>``, each its own
    design. Training identities for the embedding model (it learns packaging in general rather
    than the 42 products it trains on, which is what recognising a newly enrolled SKU needs) and
    extra variety for the detector. Deterministic in (n, seed); registered for :func:`lookup`."""
    import numpy as np

    if n < 0 or seed < 0:
        raise ValueError(f"distractors(n={n}, seed={seed}): expected n >= 0 and seed >= 0")
    rng = np.random.default_rng([seed, 0xD157])
    out = []
    for k in range(n):
        shape = str(rng.choice(("box", "cylinder", "bag"), p=(0.45, 0.3, 0.25)))
        if shape == "box":
            dims = sorted((float(rng.uniform(90, 300)), float(rng.uniform(45, 200))), reverse=True)
            size = (dims[0], dims[1], float(rng.uniform(25, 110)))
        elif shape == "cylinder":
            d = float(rng.uniform(50, 100))
            size = (d, d, float(rng.uniform(40, 280)))
        else:
            size = (float(rng.uniform(150, 300)), float(rng.uniform(100, 230)), float(rng.uniform(20, 90)))
        weight = float(rng.uniform(80, 1600))
        colors = tuple(tuple(int(c) for c in rng.integers(15, 250, 3)) for _ in range(3))
        brand = "".join(rng.choice(_SYLLABLES, int(rng.integers(2, 4)))).capitalize()
        sku = Sku(sku=f"{DISTRACTOR_PREFIX}{seed}-{k:05d}", name=f"{brand} {seed}-{k}", shape=shape, size_mm=size,
                  weight_g=round(weight), weight_std_g=round(max(1.0, weight * 0.008), 1), price=1.0,
                  material=str(rng.choice(_MATERIALS[shape])), design=1_000_000 + seed * 100_000 + k,
                  colors=colors, pattern=str(rng.choice(_PATTERN_NAMES)), variant=str(rng.choice(_VARIANTS)),
                  kind=str(rng.choice(_KINDS)) if shape == "cylinder" else "")
        _DISTRACTORS[sku.sku] = sku
        out.append(sku)
    return tuple(out)


def catalog_json(skus: tuple[Sku, ...] | None = None) -> str:
    """The catalog as the JSON written on ``/catalog``: ``{"version", "skus": [...]}``."""
    items = [s.to_json() for s in (skus or catalog())]
    return json.dumps({"version": CATALOG_VERSION, "skus": items}, sort_keys=True, separators=(",", ":"))
