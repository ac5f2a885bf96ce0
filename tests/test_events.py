"""Event schema v1: validation, canonical JSON / msgpack, snapshots."""

import json
import math
import pickle

import msgpack
import pytest

from caper_edge.events import EVENT_FIELDS, EVENT_TYPES, BasketItem, BasketSnapshot, Event


def _event(**kw):
    base = dict(type="item_added", t_ns=1_700_000_000_123, sku="4006381333931", qty=1, confidence=0.93,
                weight_delta_g=412.5, track_id=17, seq=42)
    base.update(kw)
    return Event(**base)


def test_json_line_is_exactly_the_documented_text():
    # Hand-written expected line: key order v, seq, type, t_ns, sku, qty, confidence,
    # weight_delta_g, track_id, then extras sorted, nested keys sorted, no spaces.
    e = _event(extras={"evidence": {"vision": 0.9, "scale": {"sigma_g": 1.5, "delta_g": 412.5}}, "aisle": "7"})
    expected = (
        '{"v":1,"seq":42,"type":"item_added","t_ns":1700000000123,"sku":"4006381333931","qty":1,'
        '"confidence":0.93,"weight_delta_g":412.5,"track_id":17,"aisle":"7",'
        '"evidence":{"scale":{"delta_g":412.5,"sigma_g":1.5},"vision":0.9}}\n'
    )
    assert e.to_json_line() == expected


def test_msgpack_matches_a_hand_built_ordered_map():
    e = _event(type="item_removed", weight_delta_g=-200, track_id=None)
    ordered = {"v": 1, "seq": 42, "type": "item_removed", "t_ns": 1_700_000_000_123, "sku": "4006381333931",
               "qty": 1, "confidence": 0.93, "weight_delta_g": -200.0, "track_id": None}
    assert e.to_msgpack() == msgpack.packb(ordered, use_bin_type=True)
    assert list(msgpack.unpackb(e.to_msgpack())) == list(EVENT_FIELDS)


def test_round_trips_and_pickle():
    e = _event(extras={"evidence": [1, 2.5, None, "x"]})
    assert Event.from_msgpack(e.to_msgpack()) == e
    assert Event.from_json_line(e.to_json_line()) == e
    assert pickle.loads(pickle.dumps(e)) == e
    assert Event.from_json_line(e.to_json_line()).to_json_line() == e.to_json_line()


def test_same_event_built_with_differently_ordered_extras_serialises_identically():
    a = _event(extras={"b": 1, "a": {"y": 1, "x": 2}})
    b = _event(extras={"a": {"x": 2, "y": 1}, "b": 1})
    assert a.to_json_line() == b.to_json_line() and a.to_msgpack() == b.to_msgpack()


def test_unknown_keys_become_extras_forward_compatible():
    d = _event().to_dict() | {"new_field": 3}
    assert Event.from_dict(d).extras == {"new_field": 3}


@pytest.mark.parametrize("etype", EVENT_TYPES)
def test_every_type_constructs(etype):
    sku = "A1" if etype in ("item_added", "item_removed") else None
    qty = 1 if sku else 0
    assert Event(etype, 5, sku=sku, qty=qty, seq=1).type == etype


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"type": "item_teleported"}, "event type = 'item_teleported'"),
        ({"seq": 0}, "event seq = 0"),
        ({"seq": True}, "event seq = True"),
        ({"t_ns": -1}, "event t_ns = -1"),
        ({"t_ns": 1.5}, "event t_ns = 1.5"),
        ({"sku": None}, "event sku (item_added) = None"),
        ({"sku": " A"}, "event sku (item_added) = ' A'"),
        ({"qty": 0}, "event qty (item_added) = 0"),
        ({"confidence": 1.5}, "event confidence = 1.5"),
        ({"confidence": math.nan}, "event confidence = nan"),
        ({"weight_delta_g": math.inf}, "event weight_delta_g = inf"),
        ({"weight_delta_g": "12"}, "event weight_delta_g = '12'"),
        ({"track_id": -3}, "event track_id = -3"),
        ({"v": 2}, "event v = 2"),
        ({"extras": {"seq": 1}}, "shadows a core field"),
        ({"extras": {"Bad-Key": 1}}, "lower_snake_case"),
        ({"extras": {"evidence": {"x": math.nan}}}, "event.evidence.x = nan"),
        ({"extras": {"evidence": object()}}, "event.evidence is a object"),
        ({"extras": {"evidence": {1: 2}}}, "table keys must be strings"),
    ],
)
def test_invalid_fields_name_the_field_and_value(kw, fragment):
    with pytest.raises(ValueError) as info:
        _event(**kw)
    assert fragment in str(info.value)


def test_non_item_events_allow_missing_sku_and_zero_qty():
    e = Event("unexpected_weight", 9, qty=0, weight_delta_g=-35.0, confidence=0.6, seq=3)
    assert e.sku is None and e.to_dict()["sku"] is None


def test_draft_cannot_be_serialised():
    with pytest.raises(ValueError, match="draft item_added event"):
        _event(seq=None).to_json_line()


def test_received_event_must_have_every_core_field():
    d = _event().to_dict()
    del d["qty"], d["track_id"]
    with pytest.raises(ValueError, match="missing field"):
        Event.from_dict(d)
    with pytest.raises(ValueError, match="not valid msgpack"):
        Event.from_msgpack(b"\xc1garbage")
    with pytest.raises(ValueError, match="must be a msgpack map"):
        Event.from_msgpack(msgpack.packb([1, 2]))


def test_json_is_valid_for_a_plain_json_parser():
    e = _event(sku="Käse 200g", extras={"note": "ünïcode \"quoted\""})
    parsed = json.loads(e.to_json_line())
    assert parsed["sku"] == "Käse 200g" and parsed["note"] == 'ünïcode "quoted"'


def test_snapshot_round_trip_and_validation():
    s = BasketSnapshot(seq=7, t_ns=100, items=(BasketItem("A", 2, {"name": "Milk"}), BasketItem("B", 1)),
                       weight_g=1234, expected_weight_g=1230.5, extras={"fusion_state": {"tracks": []}})
    assert s.to_json() == (
        '{"v":1,"seq":7,"t_ns":100,"items":[{"sku":"A","qty":2,"name":"Milk"},{"sku":"B","qty":1}],'
        '"weight_g":1234.0,"expected_weight_g":1230.5,"fusion_state":{"tracks":[]}}'
    )
    assert BasketSnapshot.from_msgpack(s.to_msgpack()) == s
    assert pickle.loads(pickle.dumps(s)) == s
    assert s.total_qty == 3
    with pytest.raises(ValueError, match="repeat a SKU"):
        BasketSnapshot(1, 1, (BasketItem("A", 1), BasketItem("A", 2)))
    with pytest.raises(ValueError, match="basket item A qty = 0"):
        BasketItem("A", 0)
    with pytest.raises(ValueError, match="snapshot is missing field"):
        BasketSnapshot.from_dict({"v": 1, "seq": 1})
