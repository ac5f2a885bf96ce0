"""Basket events and basket snapshots: the public wire schema (version 1).

Every subscriber of ``caper-edge`` (cart UI, payment backend, evaluation jobs) reads these two
messages, so they are validated on construction and serialised canonically: the same event
always gives the same bytes, in JSON (one line, fixed key order) and in msgpack. Two replays of a
bag therefore give byte-identical JSONL. docs/events.md is the human description of this module.

Key order on the wire: the core fields in :data:`EVENT_FIELDS` order, then the optional extras
(e.g. ``evidence``) sorted by key; nested tables inside extras are sorted by key too.

An :class:`Event` whose ``seq`` is ``None`` is a *draft*: fusion makes drafts, the journal
gives them their ``seq`` when it commits them, and only sequenced events can be serialised.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

import msgpack

__all__ = [
    "SCHEMA_VERSION",
    "EVENT_TYPES",
    "EVENT_FIELDS",
    "Event",
    "BasketItem",
    "BasketSnapshot",
    "canonical_json",
    "canonical_msgpack",
    "decode_msgpack",
]

SCHEMA_VERSION = 1

EVENT_TYPES: tuple[str, ...] = (
    "item_added",
    "item_removed",
    "unexpected_weight",
    "weight_mismatch",
    "unconfirmed_item",
    "basket_reset",
)
# Events that change the basket by whole units of a known SKU.
_ITEM_TYPES = frozenset({"item_added", "item_removed"})

EVENT_FIELDS: tuple[str, ...] = (
    "v",
    "seq",
    "type",
    "t_ns",
    "sku",
    "qty",
    "confidence",
    "weight_delta_g",
    "track_id",
)

_INT64_MAX = 2**63 - 1
_EXTRA_KEY = re.compile(r"^[a-z_][a-z0-9_]*$")


# ---------------------------------------------------------------------------------------------
# Canonical encoding
# ---------------------------------------------------------------------------------------------


def canonical_json(obj: Mapping[str, Any]) -> str:
    """One line of JSON, no spaces, UTF-8 text kept as is, NaN/inf refused; no trailing newline.

    Key order is the mapping's own order (the classes below build it canonically).
    """
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def canonical_msgpack(obj: Mapping[str, Any]) -> bytes:
    """msgpack with str as str-type and bytes as bin-type; key order is the mapping's order."""
    return msgpack.packb(obj, use_bin_type=True)


def decode_msgpack(payload: bytes, what: str = "message") -> dict[str, Any]:
    """Decode one msgpack map; raise ValueError naming ``what`` for anything else."""
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise ValueError(f"{what} is not valid msgpack ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a msgpack map, got {type(obj).__name__}")
    return obj


def _canonical_value(value: Any, where: str) -> Any:
    """Check that ``value`` is JSON-representable and return it with tables sorted by key."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
            raise ValueError(f"{where} = {value}: integers must fit in int64")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} = {value}: expected a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key in sorted(value, key=lambda k: (not isinstance(k, str), str(k))):
            if not isinstance(key, str):
                raise ValueError(f"{where} has key {key!r}: table keys must be strings")
            out[key] = _canonical_value(value[key], f"{where}.{key}")
        return out
    raise ValueError(f"{where} is a {type(value).__name__}: expected null, bool, number, string, list or table")


def _freeze_extras(extras: Mapping[str, Any] | None, reserved: Iterable[str], what: str) -> Mapping[str, Any]:
    if extras is None:
        return MappingProxyType({})
    if not isinstance(extras, Mapping):
        raise ValueError(f"{what} extras must be a mapping, got {type(extras).__name__}")
    reserved = set(reserved)
    out: dict[str, Any] = {}
    for key in sorted(extras, key=str):
        if not isinstance(key, str) or not _EXTRA_KEY.match(key):
            raise ValueError(f"{what} extra key {key!r}: expected lower_snake_case")
        if key in reserved:
            raise ValueError(f"{what} extra key {key!r} shadows a core field")
        out[key] = _canonical_value(extras[key], f"{what}.{key}")
    return MappingProxyType(out)


def _reduce(obj: Any) -> tuple[Any, tuple[Any, ...]]:
    # mappingproxy does not pickle: rebuild from the fields, extras as a plain dict.
    values = tuple(
        dict(getattr(obj, f.name)) if f.name == "extras" else getattr(obj, f.name) for f in fields(obj)
    )
    return (type(obj), values)


# ---------------------------------------------------------------------------------------------
# Field checks
# ---------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(value: Any, name: str, lo: int, hi: int = _INT64_MAX) -> None:
    if not _is_int(value) or not lo <= value <= hi:
        raise ValueError(f"{name} = {value!r}: expected an integer in {lo}..{hi}")


def _check_float(value: Any, name: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value) and lo <= value <= hi
    if not ok:
        bounds = "a finite number" if (lo, hi) == (-math.inf, math.inf) else f"a number in [{lo}, {hi}]"
        raise ValueError(f"{name} = {value!r}: expected {bounds}")
    return float(value)


def _check_sku(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value or value != value.strip():
        raise ValueError(f"{name} = {value!r}: expected a non-empty SKU string without surrounding spaces")


# ---------------------------------------------------------------------------------------------
# Event
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One basket event (schema version 1).

    Attributes
    ----------
    type : str
        One of :data:`EVENT_TYPES`.
    t_ns : int
        When it happened, int64 nanoseconds on the host monotonic clock (live) or the bag's
        time base (replay); for a weight-decided event, the moment the weight settled.
    sku : str or None
        The product concerned; required for ``item_added`` / ``item_removed``.
    qty : int
        Units concerned: >= 1 for ``item_added`` / ``item_removed``, >= 0 otherwise
        (``basket_reset``: units cleared).
    confidence : float
        Fusion's confidence in this event, 0..1.
    weight_delta_g : float or None
        Settled scale change in grams, signed (negative when weight left the basket); None when
        no weight change belongs to the event.
    track_id : int or None
        The vision track that carried the item, when one did.
    seq : int or None
        Journal sequence number, >= 1, strictly increasing across restarts; None for a draft.
    extras : mapping
        Optional additional fields, lower_snake_case keys, JSON values (e.g. ``evidence``).
    """

    type: str
    t_ns: int
    sku: str | None = None
    qty: int = 1
    confidence: float = 1.0
    weight_delta_g: float | None = None
    track_id: int | None = None
    seq: int | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.v != SCHEMA_VERSION:
            raise ValueError(f"event v = {self.v!r}: this reader understands schema version {SCHEMA_VERSION}")
        if self.type not in EVENT_TYPES:
            raise ValueError(f"event type = {self.type!r}: expected one of {', '.join(EVENT_TYPES)}")
        if self.seq is not None:
            _check_int(self.seq, "event seq", 1)
        _check_int(self.t_ns, "event t_ns", 0)
        if self.type in _ITEM_TYPES:
            _check_sku(self.sku, f"event sku ({self.type})")
            _check_int(self.qty, f"event qty ({self.type})", 1)
        else:
            if self.sku is not None:
                _check_sku(self.sku, "event sku")
            _check_int(self.qty, "event qty", 0)
        object.__setattr__(self, "confidence", _check_float(self.confidence, "event confidence", 0.0, 1.0))
        if self.weight_delta_g is not None:
            object.__setattr__(self, "weight_delta_g", _check_float(self.weight_delta_g, "event weight_delta_g"))
        if self.track_id is not None:
            _check_int(self.track_id, "event track_id", 0)
        object.__setattr__(self, "extras", _freeze_extras(self.extras, EVENT_FIELDS, "event"))

    def __hash__(self) -> int:
        return hash((self.seq, self.type, self.t_ns, self.sku, self.qty, self.track_id))

    def __reduce__(self):
        return _reduce(self)

    def with_seq(self, seq: int) -> Event:
        """The same event, sequenced (the journal calls this when it commits)."""
        return replace(self, seq=seq)

    # -- serialisation ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Canonical mapping: core fields in :data:`EVENT_FIELDS` order, then sorted extras."""
        if self.seq is None:
            raise ValueError(f"a draft {self.type} event (seq None) cannot be serialised; journal it first")
        out = {name: getattr(self, name) for name in EVENT_FIELDS}
        out.update(self.extras)
        return out

    def to_json_line(self) -> str:
        """One JSONL line including the trailing ``\\n``."""
        return canonical_json(self.to_dict()) + "\n"

    def to_msgpack(self) -> bytes:
        return canonical_msgpack(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Validate a received mapping; unknown keys become extras (forward compatible)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"event must be a table, got {type(data).__name__}")
        missing = [name for name in EVENT_FIELDS if name not in data]
        if missing:
            raise ValueError(f"event is missing field(s) {', '.join(missing)}")
        if data["seq"] is None:
            raise ValueError("event seq = None: a received event must be sequenced")
        core = {name: data[name] for name in EVENT_FIELDS}
        extras = {k: v for k, v in data.items() if k not in EVENT_FIELDS}
        return cls(**core, extras=extras)

    @classmethod
    def from_json_line(cls, line: str) -> Event:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"event line is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_msgpack(cls, payload: bytes) -> Event:
        return cls.from_dict(decode_msgpack(payload, "event payload"))


# ---------------------------------------------------------------------------------------------
# Basket snapshot
# ---------------------------------------------------------------------------------------------

_ITEM_FIELDS = ("sku", "qty")
_SNAPSHOT_FIELDS = ("v", "seq", "t_ns", "items", "weight_g", "expected_weight_g")


@dataclass(frozen=True)
class BasketItem:
    """One basket line: ``qty`` units (>= 1) of ``sku``; extras e.g. ``unit_weight_g``, ``name``."""

    sku: str
    qty: int
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_sku(self.sku, "basket item sku")
        _check_int(self.qty, f"basket item {self.sku} qty", 1)
        object.__setattr__(self, "extras", _freeze_extras(self.extras, _ITEM_FIELDS, "basket item"))

    def __hash__(self) -> int:
        return hash((self.sku, self.qty))

    def __reduce__(self):
        return _reduce(self)

    def to_dict(self) -> dict[str, Any]:
        return {"sku": self.sku, "qty": self.qty, **self.extras}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BasketItem:
        if not isinstance(data, Mapping) or "sku" not in data or "qty" not in data:
            raise ValueError(f"basket item must be a table with sku and qty, got {data!r}")
        return cls(data["sku"], data["qty"], {k: v for k, v in data.items() if k not in _ITEM_FIELDS})


@dataclass(frozen=True)
class BasketSnapshot:
    """The whole basket as of event ``seq`` (0: before any event).

    ``items`` keeps fusion's order (order of first addition). ``weight_g`` is the settled scale
    reading of the basket contents and ``expected_weight_g`` the catalogue sum for ``items``, both
    in grams or None when unknown. Fusion may keep its private restore state in extras.
    """

    seq: int
    t_ns: int
    items: tuple[BasketItem, ...] = ()
    weight_g: float | None = None
    expected_weight_g: float | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.v != SCHEMA_VERSION:
            raise ValueError(f"snapshot v = {self.v!r}: this reader understands schema version {SCHEMA_VERSION}")
        _check_int(self.seq, "snapshot seq", 0)
        _check_int(self.t_ns, "snapshot t_ns", 0)
        items = tuple(self.items)
        for item in items:
            if not isinstance(item, BasketItem):
                raise ValueError(f"snapshot items must be BasketItem, got {type(item).__name__}")
        skus = [item.sku for item in items]
        if len(set(skus)) != len(skus):
            raise ValueError(f"snapshot items repeat a SKU: {skus}")
        object.__setattr__(self, "items", items)
        for name in ("weight_g", "expected_weight_g"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_float(value, f"snapshot {name}"))
        object.__setattr__(self, "extras", _freeze_extras(self.extras, _SNAPSHOT_FIELDS, "snapshot"))

    def __hash__(self) -> int:
        return hash((self.seq, self.t_ns, self.items))

    def __reduce__(self):
        return _reduce(self)

    @property
    def total_qty(self) -> int:
        return sum(item.qty for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": self.v,
            "seq": self.seq,
            "t_ns": self.t_ns,
            "items": [item.to_dict() for item in self.items],
            "weight_g": self.weight_g,
            "expected_weight_g": self.expected_weight_g,
            **self.extras,
        }

    def to_msgpack(self) -> bytes:
        return canonical_msgpack(self.to_dict())

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BasketSnapshot:
        if not isinstance(data, Mapping):
            raise ValueError(f"snapshot must be a table, got {type(data).__name__}")
        missing = [name for name in _SNAPSHOT_FIELDS if name not in data]
        if missing:
            raise ValueError(f"snapshot is missing field(s) {', '.join(missing)}")
        if not isinstance(data["items"], (list, tuple)):
            raise ValueError(f"snapshot items must be a list, got {type(data['items']).__name__}")
        return cls(
            v=data["v"],
            seq=data["seq"],
            t_ns=data["t_ns"],
            items=tuple(BasketItem.from_dict(item) for item in data["items"]),
            weight_g=data["weight_g"],
            expected_weight_g=data["expected_weight_g"],
            extras={k: v for k, v in data.items() if k not in _SNAPSHOT_FIELDS},
        )

    @classmethod
    def from_msgpack(cls, payload: bytes) -> BasketSnapshot:
        return cls.from_dict(decode_msgpack(payload, "snapshot payload"))

    @classmethod
    def empty(cls, t_ns: int = 0) -> BasketSnapshot:
        return cls(seq=0, t_ns=t_ns)
