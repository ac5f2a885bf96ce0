"""The basket: a multiset of SKUs with per-unit confidence, the receipt view, and snapshots.

Fusion is the only writer: it calls :meth:`Basket.add` / :meth:`Basket.remove` for the events it
emits. Each unit remembers the confidence of the event that added it and the vision track that
carried it (so a later removal seen by the same track names its line). A line's confidence is
the product of its units' confidences: the probability that every unit on it is right if the
decisions were independent -- what "this receipt line is correct" means. A removal takes the
units of the track seen leaving first (the unit it carried in is the one lifted), then the
least confident units of the line: they are the ones most likely to have been wrong.

:meth:`Basket.snapshot` gives the contract's :class:`~caper_edge.events.BasketSnapshot` (lines in
order of first addition, catalogue names and unit weights as extras, fusion's per-unit state in
the ``units`` extra of each line) and :meth:`Basket.from_snapshot` rebuilds the basket from it,
so the journal's latest snapshot restores the basket after a restart.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog
from .events import BasketItem, BasketSnapshot

__all__ = ["Basket", "BasketLine", "Receipt", "ReceiptLine", "Unit"]


@dataclass(frozen=True)
class Unit:
    """One unit in the basket: the adding event's confidence, its track (or None) and time."""

    confidence: float
    track_id: int | None
    t_ns: int


@dataclass
class BasketLine:
    sku: str
    units: list[Unit] = field(default_factory=list)

    @property
    def qty(self) -> int:
        return len(self.units)

    @property
    def confidence(self) -> float:
        return math.prod(u.confidence for u in self.units)

    @property
    def track_ids(self) -> set[int]:
        return {u.track_id for u in self.units if u.track_id is not None}


@dataclass(frozen=True)
class ReceiptLine:
    sku: str
    name: str
    qty: int
    unit_price: float
    line_total: float
    confidence: float


@dataclass(frozen=True)
class Receipt:
    lines: tuple[ReceiptLine, ...]
    total: float

    def format(self, currency: str = "") -> str:
        """A fixed-width text receipt (one line per SKU, then the total)."""
        rows = [f"{'qty':>3s}  {'item':<36s} {'unit':>8s} {'total':>9s}  conf"]
        for ln in self.lines:
            rows.append(f"{ln.qty:>3d}  {ln.name[:36]:<36s} {ln.unit_price:>8.2f} {ln.line_total:>9.2f}  {ln.confidence:.2f}")
        rows.append(f"{'':>3s}  {'TOTAL':<36s} {'':>8s} {self.total:>9.2f}{(' ' + currency) if currency else ''}")
        return "\n".join(rows)


class Basket:
    """Lines keyed by SKU, kept in order of first addition."""

    def __init__(self) -> None:
        self._lines: dict[str, BasketLine] = {}

    # -- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[BasketLine]:
        return iter(self._lines.values())

    def __contains__(self, sku: object) -> bool:
        return sku in self._lines

    def qty(self, sku: str) -> int:
        line = self._lines.get(sku)
        return line.qty if line else 0

    @property
    def total_qty(self) -> int:
        return sum(line.qty for line in self._lines.values())

    def counts(self) -> Counter[str]:
        """The basket as a multiset ``{sku: qty}``."""
        return Counter({sku: line.qty for sku, line in self._lines.items()})

    def line(self, sku: str) -> BasketLine | None:
        return self._lines.get(sku)

    def expected_weight_g(self, catalog: Catalog) -> float:
        """Catalogue weight of the contents (grams); SKUs missing from the catalogue count 0."""
        return sum(line.qty * p.weight_g for line in self._lines.values() if (p := catalog.get(line.sku)))

    # -- writing ------------------------------------------------------------------------------

    def add(self, sku: str, qty: int = 1, *, confidence: float = 1.0, track_id: int | None = None, t_ns: int = 0) -> None:
        _check_qty(qty, "add")
        if not isinstance(sku, str) or not sku:
            raise ValueError(f"basket add: sku = {sku!r}, expected a non-empty string")
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"basket add {sku}: confidence = {confidence!r}, expected 0..1")
        line = self._lines.setdefault(sku, BasketLine(sku))
        line.units.extend(Unit(float(confidence), track_id, int(t_ns)) for _ in range(qty))

    def remove(self, sku: str, qty: int = 1, *, track_id: int | None = None) -> None:
        """Take ``qty`` units of ``sku`` out: the units ``track_id`` carried in first (the track
        seen leaving names the unit lifted, not only its line), then the least confident.
        ValueError if fewer are there."""
        _check_qty(qty, "remove")
        have = self.qty(sku)
        if have < qty:
            raise ValueError(f"basket remove {qty} x {sku}: the basket holds {have}")
        line = self._lines[sku]
        # Stable sort: among equal confidences the oldest unit goes first.
        order = sorted(range(line.qty), key=lambda i: (track_id is None or line.units[i].track_id != track_id,
                                                       line.units[i].confidence))
        drop = set(order[:qty])
        line.units = [u for i, u in enumerate(line.units) if i not in drop]
        if not line.units:
            del self._lines[sku]

    def clear(self) -> int:
        """Empty the basket; returns the number of units cleared."""
        n = self.total_qty
        self._lines.clear()
        return n

    # -- views --------------------------------------------------------------------------------

    def receipt(self, catalog: Catalog) -> Receipt:
        """Lines with catalogue name, unit price and line total; unknown SKUs priced 0 and named
        by their id (they cannot come from fusion, which only adds catalogue SKUs)."""
        lines = []
        for line in self._lines.values():
            p = catalog.get(line.sku)
            name, price = (p.name, p.price) if p else (line.sku, 0.0)
            lines.append(ReceiptLine(line.sku, name, line.qty, price, round(price * line.qty, 2), line.confidence))
        return Receipt(tuple(lines), round(sum(ln.line_total for ln in lines), 2))

    def snapshot(self, seq: int, t_ns: int, *, catalog: Catalog | None = None, weight_g: float | None = None) -> BasketSnapshot:
        items = []
        for line in self._lines.values():
            extras: dict[str, Any] = {
                "confidence": round(line.confidence, 6),
                "units": [[round(u.confidence, 6), u.track_id, u.t_ns] for u in line.units],
            }
            p = catalog.get(line.sku) if catalog else None
            if p:
                extras.update(name=p.name, unit_weight_g=p.weight_g, unit_price=p.price)
            items.append(BasketItem(line.sku, line.qty, extras))
        expected = self.expected_weight_g(catalog) if catalog else None
        return BasketSnapshot(seq=seq, t_ns=t_ns, items=tuple(items), weight_g=weight_g, expected_weight_g=expected)

    @classmethod
    def from_snapshot(cls, snapshot: BasketSnapshot | Mapping[str, Any]) -> Basket:
        """Rebuild from a snapshot (object or its dict). Lines without per-unit state (a snapshot
        written by another program) get confidence 1 and no track."""
        if not isinstance(snapshot, BasketSnapshot):
            snapshot = BasketSnapshot.from_dict(snapshot)
        basket = cls()
        for item in snapshot.items:
            units = item.extras.get("units")
            line = BasketLine(item.sku)
            if isinstance(units, (list, tuple)) and len(units) == item.qty:
                for i, u in enumerate(units):
                    if not (isinstance(u, (list, tuple)) and len(u) == 3):
                        raise ValueError(f"snapshot item {item.sku} unit {i} = {u!r}: expected [confidence, track_id, t_ns]")
                    line.units.append(Unit(float(u[0]), None if u[1] is None else int(u[1]), int(u[2])))
            else:
                line.units = [Unit(1.0, None, snapshot.t_ns) for _ in range(item.qty)]
            basket._lines[item.sku] = line
        return basket

    def to_json(self) -> str:
        """Canonical JSON of a snapshot at seq 0 (for files and tests; the journal stores snapshots)."""
        return self.snapshot(0, 0).to_json()

    @classmethod
    def from_json(cls, text: str) -> Basket:
        return cls.from_snapshot(json.loads(text))


def _check_qty(qty: Any, what: str) -> None:
    if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
        raise ValueError(f"basket {what}: qty = {qty!r}, expected an integer >= 1")
