"""store.py's own attribute-value mapping (written out for speed, bench/README.md) answers as boto3's
TypeSerializer and TypeDeserializer do, for every value this table holds and for the ones it hands to
boto3 (sets, bytes, Decimal); numbers come back as int, as they always have."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from authcore import store
from authcore.store import Grant

SER = TypeSerializer()
DE = TypeDeserializer()

# DynamoDB's numbers: up to 38 digits.
integers = st.integers(min_value=-(10**37), max_value=10**37)
scalars = st.one_of(st.text(max_size=40), integers, st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def as_ints(value: Any) -> Any:
    """boto3's answer with every number an int (what the store has always handed on)."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, list):
        return [as_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: as_ints(v) for k, v in value.items()}
    return value


@settings(max_examples=300, deadline=None)
@given(values)
def test_writes_what_boto3_writes_and_reads_it_back(value: Any) -> None:
    written = store._av(value)
    assert written == SER.serialize(value)
    assert store._py(written) == as_ints(DE.deserialize(written)) == value


def test_other_types_follow_boto3() -> None:
    for value in ({"a", "b"}, {1, 2}, b"\x00\x01", Decimal("12"), Binary(b"x")):
        assert store._av(value) == SER.serialize(value)
    assert store._py({"SS": ["a", "b"]}) == {"a", "b"}
    assert store._py({"B": b"\x00"}) == Binary(b"\x00")
    assert store._py({"N": "1E+3"}) == 1000  # any form DynamoDB may give an integer in


def test_a_str_subclass_is_written_as_a_string() -> None:
    class Name(str):
        pass

    assert store._av(Name("x")) == {"S": "x"}


def test_a_grant_item_round_trips() -> None:
    grant = Grant(
        grant_id="g" * 32,
        client_id="demo-cli",
        scope="read write",
        status="issued",
        device_code_digest="d" * 64,
        user_code="BCDFGHJK",
        created_at=1_795_000_000,
        expires_at=1_795_000_600,
        interval=5,
        user_id="user-1",
        rt_generation=3,
        scope_list=["read", "write"],
        idle_timeout=None,
        ttl=1_800_000_000,
    )
    from dataclasses import asdict

    item = store._to_ddb({"pk": "GRANT#x", "sk": "GRANT", **asdict(grant)})
    assert item == {k: SER.serialize(v) for k, v in {"pk": "GRANT#x", "sk": "GRANT", **asdict(grant)}.items()
                    if v is not None}  # fmt: skip
    assert Grant.from_item(item) == grant
