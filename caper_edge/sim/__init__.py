"""Cart simulator: a top-mounted RGB-D camera over a shopping-cart basket, with the scale.

* :class:`Simulator` — one session (scenario + seed) as a time-ordered message stream;
* :func:`write_bag` — the same written to a sensor bag (``caper-edge sim OUT``);
* :mod:`caper_edge.sim.dataset` — training images and labels straight to disk;
* :mod:`caper_edge.sim.catalog` — the 48-SKU store catalog.

See docs/simulator.md for the world model, the scenarios and what is simplified.
"""

from __future__ import annotations

from .bagio import BagStats, write_bag
from .catalog import CATALOG_VERSION, Sku, catalog, catalog_json
from .scenarios import DEFAULT_DURATION_S, SCENARIOS
from .simulator import Simulator

__all__ = [
    "CATALOG_VERSION",
    "DEFAULT_DURATION_S",
    "SCENARIOS",
    "BagStats",
    "Simulator",
    "Sku",
    "catalog",
    "catalog_json",
    "write_bag",
]
