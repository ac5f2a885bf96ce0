"""The product catalog as fusion and the receipt need it: per SKU a name, the unit weight
distribution (mean and standard deviation, grams) and the unit price.

Three sources give one :class:`Catalog`:

* a bag's ``/catalog`` topic or any JSON in that shape, ``{"version", "skus": [{"sku", "name",
  "weight_g", "weight_std_g", "price", ...}]}`` (the simulator writes it; ``weight_mean_g`` is
  accepted for ``weight_g`` so gallery-style rows load too) -- :meth:`Catalog.from_json`;
* the SKU gallery's catalog rows (:class:`caper_edge.gallery.SkuInfo`) -- :meth:`Catalog.from_gallery`;
* the simulator's built-in store -- :meth:`Catalog.simulated`.

Fusion cannot weigh a product whose weight is unknown, so every product must carry a finite
weight; a row without one is refused with the SKU named. ``look_group`` (same packaging, other
weight) is optional: fusion widens the vision candidates of a SKU to its look-alikes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError

__all__ = ["Catalog", "Product"]


@dataclass(frozen=True)
class Product:
    """One SKU. ``weight_g`` / ``weight_std_g``: mean and standard deviation of one unit's mass
    (grams); ``price``: unit price in the store's currency; ``look_group``: SKUs sharing it look
    alike (None: none does)."""

    sku: str
    name: str
    weight_g: float
    weight_std_g: float
    price: float
    look_group: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sku, str) or not self.sku or self.sku != self.sku.strip():
            raise ValueError(f"product sku = {self.sku!r}: expected a non-empty string without surrounding spaces")
        for name in ("weight_g", "weight_std_g", "price"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"product {self.sku} {name} = {value!r}: expected a finite number >= 0")
            object.__setattr__(self, name, float(value))
        if self.weight_g <= 0:
            raise ValueError(f"product {self.sku} weight_g = {self.weight_g}: expected a positive unit weight in grams")

    def to_json(self) -> dict[str, Any]:
        return {"sku": self.sku, "name": self.name, "weight_g": self.weight_g, "weight_std_g": self.weight_std_g,
                "price": self.price, "look_group": self.look_group}


class Catalog:
    """An ordered, immutable set of :class:`Product` s, looked up by SKU id."""

    def __init__(self, products: Iterable[Product]) -> None:
        self._products = tuple(products)
        self._by_sku: dict[str, Product] = {}
        for p in self._products:
            if not isinstance(p, Product):
                raise ValueError(f"catalog entries must be Product, got {type(p).__name__}")
            if p.sku in self._by_sku:
                raise ValueError(f"catalog lists SKU {p.sku} twice")
            self._by_sku[p.sku] = p
        groups: dict[str, list[str]] = {}
        for p in self._products:
            if p.look_group:
                groups.setdefault(p.look_group, []).append(p.sku)
        self._lookalikes = {p.sku: tuple(s for s in groups.get(p.look_group or "", ()) if s != p.sku) for p in self._products}

    # -- access -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._products)

    def __iter__(self) -> Iterator[Product]:
        return iter(self._products)

    def __contains__(self, sku: object) -> bool:
        return sku in self._by_sku

    def __getitem__(self, sku: str) -> Product:
        try:
            return self._by_sku[sku]
        except KeyError:
            raise KeyError(f"SKU {sku!r} is not in the catalog ({len(self)} products)") from None

    def get(self, sku: str) -> Product | None:
        return self._by_sku.get(sku)

    @property
    def skus(self) -> tuple[str, ...]:
        return tuple(p.sku for p in self._products)

    def lookalikes(self, sku: str) -> tuple[str, ...]:
        """The other members of ``sku``'s look-alike group (empty when it has none)."""
        return self._lookalikes.get(sku, ())

    # -- sources ------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any], what: str = "catalog") -> Catalog:
        """From the ``/catalog`` JSON (text or parsed). Errors name ``what`` and the offending row."""
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise InputError(f"{what} is not valid JSON: {exc}") from None
        rows = data.get("skus") if isinstance(data, Mapping) else None
        if not isinstance(rows, list) or not rows:
            raise InputError(f"{what} must be a table with a non-empty 'skus' list")
        products = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping) or "sku" not in row:
                raise InputError(f"{what} row {i} must be a table with a 'sku', got {row!r:.80}")
            weight = row.get("weight_g", row.get("weight_mean_g"))
            try:
                products.append(Product(
                    sku=row["sku"], name=str(row.get("name") or row["sku"]),
                    weight_g=_number(weight), weight_std_g=_number(row.get("weight_std_g", 0.0)),
                    price=_number(row.get("price", 0.0)), look_group=row.get("look_group") or None,
                ))
            except ValueError as exc:
                raise InputError(f"{what} row {i}: {exc}") from None
        try:
            return cls(products)
        except ValueError as exc:
            raise InputError(f"{what}: {exc}") from None

    @classmethod
    def from_gallery(cls, gallery: Any) -> Catalog:
        """From a :class:`caper_edge.gallery.Gallery`'s catalog rows (NaN prices become 0)."""
        products = []
        for info in gallery.skus:
            if not math.isfinite(info.weight_mean_g):
                raise InputError(f"gallery SKU {info.sku} has no weight_mean_g: fusion needs every SKU's unit weight")
            std = info.weight_std_g if math.isfinite(info.weight_std_g) else 0.0
            price = info.price if math.isfinite(info.price) else 0.0
            products.append(Product(info.sku, info.name or info.sku, info.weight_mean_g, std, price))
        return cls(products)

    @classmethod
    def simulated(cls) -> Catalog:
        """The simulator's store (:mod:`caper_edge.sim.catalog`)."""
        from .sim.catalog import catalog

        return cls(Product(s.sku, s.name, s.weight_g, s.weight_std_g, s.price, s.look_group) for s in catalog())

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "skus": [p.to_json() for p in self._products]}


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)
