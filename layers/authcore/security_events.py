"""Security events: what the table's stream says happened, as events on an EventBridge bus.

The request path gains no call: every flow already writes its item, and the table's stream
(NEW_AND_OLD_IMAGES) carries each change, old and new image, to the SecurityEventsFunction, which reads
them here. `events_of` turns one stream record (the low-level attribute-value format, as Lambda delivers
it) into zero or more `Event`s, a detail type and a detail; `publish` puts them on the bus (PutEvents, at
most 10 entries a call) and says which records did not get all of theirs there, for the function's
partial batch response. `replay` reads again, from the stream, the records a dead-letter message names.

| detail type              | the change                                                     |
|--------------------------|----------------------------------------------------------------|
| `device.authorized`      | a GRANT item inserted, status pending                          |
| `device.approved`        | status pending -> approved                                     |
| `device.denied`          | status pending -> denied                                       |
| `session.issued`         | status -> issued (the device code redeemed)                    |
| `session.rotated`        | rt_generation grew (sampled: SESSION_ROTATED_SAMPLE_RATE, 0 by default) |
| `session.reuse_detected` | revoked_at appears with revoke_reason "reuse"                  |
| `session.revoked`        | revoked_at appears (`reason`: who ended it)                    |
| `client.created`         | a CLIENT item inserted                                         |
| `client.disabled`        | disabled false/absent -> true                                  |
| `keys.rotated`           | not from the table: the key rotation's finishSecret (`key_rotation_event`) |

A detail holds identifiers only: grant, client, user and organization ids, the reason, the generation,
the time (ISO 8601, UTC) and an `event_id` that stays the same when a record is published again (a
retried batch, a replay), for consumers to drop duplicates. Never a token, code, digest, secret, user
code, email, name, user agent or IP address; the device's IP address only when the operator turned it on
(EVENTS_INCLUDE_DEVICE_IP). docs/events.md documents each type, docs/events/<type>.schema.json its
detail.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from authcore.observability import logger
from authcore.settings import from_environ

SOURCE = "token-service"  # the events' `source`; the table's ARN is in their `resources`

DEVICE_AUTHORIZED = "device.authorized"
DEVICE_APPROVED = "device.approved"
DEVICE_DENIED = "device.denied"
SESSION_ISSUED = "session.issued"
SESSION_ROTATED = "session.rotated"
SESSION_REUSE_DETECTED = "session.reuse_detected"
SESSION_REVOKED = "session.revoked"
CLIENT_CREATED = "client.created"
CLIENT_DISABLED = "client.disabled"
KEYS_ROTATED = "keys.rotated"
DETAIL_TYPES = frozenset(
    {
        DEVICE_AUTHORIZED,
        DEVICE_APPROVED,
        DEVICE_DENIED,
        SESSION_ISSUED,
        SESSION_ROTATED,
        SESSION_REUSE_DETECTED,
        SESSION_REVOKED,
        CLIENT_CREATED,
        CLIENT_DISABLED,
        KEYS_ROTATED,
    }
)

# Who ended a session (the grant's revoke_reason). "revoked" is what the app's sign-out and RFC 7009
# revocation wrote before the sessions API named it "logout"; anything else is reported as "unknown".
REVOKE_REASONS = frozenset({"user", "admin", "reuse", "logout"})
_LEGACY_REASONS = {"revoked": "logout"}

# The items that have events. The function's event source mapping filters on these key prefixes
# (template.yaml, FilterCriteria), so the stream's other changes (polls, user codes, rate counters)
# never invoke it; tests/integration/test_security_events.py checks that the two agree.
PREFIXES = ("GRANT#", "CLIENT#")

MAX_ENTRIES = 10  # PutEvents takes at most 10 entries per call
DEAD_LETTER_KEY = "DDBStreamBatchInfo"  # what an on-failure destination's message holds
_MAX_EMPTY_PAGES = 5  # a replay stops after this many empty pages of an open shard


class Event(NamedTuple):
    detail_type: str
    detail: dict[str, Any]


class Options(BaseModel):
    """The function's configuration, from the environment (EVENT_BUS_NAME, ...), read once."""

    model_config = ConfigDict(frozen=True)

    event_bus_name: str = Field(default="default", min_length=1, max_length=256)
    session_rotated_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    events_include_device_ip: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Options:
        return from_environ(environ, cls)


@lru_cache(maxsize=1)
def options() -> Options:
    """The environment's Options (cached: `options.cache_clear()` after changing the environment)."""
    return Options.from_environ(os.environ)


# ---------------------------------------------------------------- stream records -> events

_de = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _image(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    return {name: _plain(_de.deserialize(value)) for name, value in (raw or {}).items()}


def iso(seconds: float) -> str:
    """Epoch seconds as ISO 8601 UTC, to the second: "2026-11-30T09:00:00Z"."""
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(stamp: Any, approximate: Any) -> str:
    """When it happened: the item's own time (the service's clock) or, without one, the stream's."""
    if isinstance(stamp, int) and not isinstance(stamp, bool) and stamp > 0:
        return iso(stamp)
    if isinstance(approximate, (int, float)) and not isinstance(approximate, bool):
        return iso(approximate)
    raise ValueError("the record has no time")


def sampled(grant_id: str, generation: int, rate: float) -> bool:
    """Whether a rotation is reported. Decided by the rotation itself (a hash of the grant id and the
    generation), so that a record delivered again decides the same way."""
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    digest = hashlib.sha256(f"{grant_id}:{generation}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def revoke_reason(stored: Any) -> str:
    """Who ended a session, as a detail says it: user | admin | reuse | logout (or unknown)."""
    reason = _LEGACY_REASONS.get(str(stored), str(stored))
    return reason if reason in REVOKE_REASONS else "unknown"


def _grant_events(
    old: dict[str, Any], new: dict[str, Any], opts: Options, approximate: Any
) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    grant = {"grant_id": str(new["grant_id"]), "client_id": str(new["client_id"])}
    person = {"user_id": new.get("user_id"), "org_id": new.get("org_id")}
    device = {"device_ip": new.get("device_ip")} if opts.events_include_device_ip else {}
    status, was = new.get("status"), old.get("status")
    generation = int(new.get("rt_generation") or 0)
    if not old and status == "pending":
        found.append(
            (DEVICE_AUTHORIZED, {**grant, **device, "time": _time(new.get("created_at"), approximate)})
        )
    if was == "pending" and status in ("approved", "denied"):
        kind = DEVICE_APPROVED if status == "approved" else DEVICE_DENIED
        found.append((kind, {**grant, **person, **device, "time": _time(new.get("decided_at"), approximate)}))
    if status == "issued" and was != "issued":
        at = _time(new.get("issued_at"), approximate)
        found.append((SESSION_ISSUED, {**grant, **person, **device, "generation": generation, "time": at}))
    elif (
        status == "issued"
        and generation > int(old.get("rt_generation") or 0)
        and sampled(grant["grant_id"], generation, opts.session_rotated_sample_rate)
    ):
        at = _time(new.get("rt_rotated_at"), approximate)
        found.append((SESSION_ROTATED, {**grant, **person, "generation": generation, "time": at}))
    if new.get("revoked_at") is not None and old.get("revoked_at") is None:
        reason = revoke_reason(new.get("revoke_reason"))
        at = _time(new.get("revoked_at"), approximate)
        if reason == "reuse":
            found.append((SESSION_REUSE_DETECTED, {**grant, **person, "generation": generation, "time": at}))
        found.append(
            (SESSION_REVOKED, {**grant, **person, "reason": reason, "generation": generation, "time": at})
        )
    return found


def _client_events(
    old: dict[str, Any], new: dict[str, Any], approximate: Any
) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    client = {"client_id": str(new["client_id"])}
    if not old:
        found.append((CLIENT_CREATED, {**client, "time": _time(new.get("created_at"), approximate)}))
    if new.get("disabled") is True and old.get("disabled") is not True:
        found.append((CLIENT_DISABLED, {**client, "time": _time(None, approximate)}))
    return found


def events_of(record: Mapping[str, Any], opts: Options) -> list[Event]:
    """The events one stream record (NEW_AND_OLD_IMAGES, as Lambda delivers it) stands for.

    A record without its eventID, or a GRANT or CLIENT item without its id, raises (KeyError,
    ValueError): the function then fails that record rather than lose its events."""
    change = record.get("dynamodb") or {}
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return []  # REMOVE: TTL's garbage collection, nothing happened
    key = str(_image(change.get("Keys")).get("pk", ""))
    old, new = _image(change.get("OldImage")), _image(change.get("NewImage"))
    approximate = change.get("ApproximateCreationDateTime")
    if key.startswith("GRANT#") and new.get("pk") == key and new.get("sk") == "GRANT":
        found = _grant_events(old, new, opts, approximate)
    elif key.startswith("CLIENT#") and new.get("sk") == "CLIENT":
        found = _client_events(old, new, approximate)
    else:
        return []
    record_id = str(record["eventID"])
    return [Event(kind, {"event_id": f"{record_id}/{kind}", **detail}) for kind, detail in found]


def key_rotation_event(kid: str, next_kid: str | None, now: int) -> Event:
    """keys.rotated: `kid` signs from now on, `next_kid` is published and signs after the next rotation.
    Key ids are public (the JWKS lists them)."""
    detail = {"event_id": f"{KEYS_ROTATED}/{kid}", "kid": kid, "next_kid": next_kid, "time": iso(now)}
    return Event(KEYS_ROTATED, detail)


def entry(event: Event, bus: str, resources: Sequence[str] = ()) -> dict[str, Any]:
    """One PutEvents entry."""
    if event.detail_type not in DETAIL_TYPES:
        raise ValueError(f"unknown detail type {event.detail_type!r}")
    return {
        "Source": SOURCE,
        "DetailType": event.detail_type,
        "Detail": json.dumps(event.detail, sort_keys=True, separators=(",", ":")),
        "Resources": list(resources),
        "EventBusName": bus,
    }


def _resources(record: Mapping[str, Any]) -> list[str]:
    """The table the record comes from (its stream's ARN without /stream/...), for `resources`."""
    arn = str(record.get("eventSourceARN") or "")
    return [arn.split("/stream/", 1)[0]] if arn.startswith("arn:") else []


# ---------------------------------------------------------------- publishing


class NotPublished(Exception):
    """A record whose events did not all get on the bus (the message is an error code, never data)."""


@dataclass
class Outcome:
    """What `publish` did: how many events got on the bus, and the records (by eventID) that failed."""

    published: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def settle(self, record: Any) -> None:
        """Powertools' record handler: fail the records whose events are not all on the bus (the
        BatchProcessor then reports them in batchItemFailures)."""
        why = self.failed.get(str(record.event_id))
        if why is not None:
            raise NotPublished(why)


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__


def publish(client: Any, records: Iterable[Mapping[str, Any]], opts: Options) -> Outcome:
    """Put the records' events on the bus, at most MAX_ENTRIES a call, and say which records did not
    get all of theirs there: an unreadable record, a call that failed, or an entry PutEvents refused
    (FailedEntryCount). Their other events may be on the bus already; a retry sends them again with the
    same `event_id`."""
    outcome = Outcome()
    pending: list[tuple[str, dict[str, Any]]] = []
    for record in records:
        record_id = str(record.get("eventID"))
        try:
            found = events_of(record, opts)
        except (KeyError, TypeError, ValueError) as exc:
            outcome.failed[record_id] = f"unreadable record ({type(exc).__name__})"
            continue
        pending.extend((record_id, entry(event, opts.event_bus_name, _resources(record))) for event in found)
    for start in range(0, len(pending), MAX_ENTRIES):
        chunk = pending[start : start + MAX_ENTRIES]
        try:
            response = client.put_events(Entries=[e for _, e in chunk])
        except (BotoCoreError, ClientError) as exc:
            for record_id, _ in chunk:
                outcome.failed.setdefault(record_id, _error_code(exc))
            continue
        if not response.get("FailedEntryCount"):
            outcome.published += len(chunk)
            continue
        results = response.get("Entries", [])
        for i, (record_id, _) in enumerate(chunk):
            result = results[i] if i < len(results) else {}
            if result.get("EventId") and not result.get("ErrorCode"):
                outcome.published += 1
            else:
                outcome.failed.setdefault(record_id, str(result.get("ErrorCode") or "NoResult"))
    if outcome.failed:
        logger.warning(
            "security events not published",
            extra={
                "failed_records": len(outcome.failed),
                "error_codes": sorted(set(outcome.failed.values())),
            },
        )
    logger.info("security events published", extra={"published": outcome.published})
    return outcome


# ---------------------------------------------------------------- replaying a dead-letter message


def _as_delivered(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record as the DynamoDB Streams API returns it, in the shape Lambda delivers it."""
    change = dict(record.get("dynamodb") or {})
    at = change.get("ApproximateCreationDateTime")
    if isinstance(at, datetime):
        change["ApproximateCreationDateTime"] = int(at.timestamp())
    return {**record, "dynamodb": change, "eventSourceARN": stream_arn}


def dead_letter_records(streams: Any, batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records a dead-letter message names (its DDBStreamBatchInfo: stream, shard, first and last
    sequence number), read again from the stream (which keeps them 24 hours)."""
    arn, first, last = (
        str(batch["streamArn"]),
        str(batch["startSequenceNumber"]),
        int(batch["endSequenceNumber"]),
    )
    iterator = streams.get_shard_iterator(
        StreamArn=arn,
        ShardId=str(batch["shardId"]),
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=first,
    )["ShardIterator"]
    found: list[dict[str, Any]] = []
    empty = 0
    while iterator and empty < _MAX_EMPTY_PAGES:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        records = page.get("Records", [])
        empty = 0 if records else empty + 1
        for record in records:
            if int(record["dynamodb"]["SequenceNumber"]) > last:
                return found
            found.append(_as_delivered(record, arn))
        if found and int(found[-1]["dynamodb"]["SequenceNumber"]) >= last:
            return found
        iterator = page.get("NextShardIterator")
    return found


def replay(streams: Any, client: Any, message: Mapping[str, Any], opts: Options) -> dict[str, Any]:
    """Publish again the events of the records a dead-letter message names (an operator invokes the
    function with the message; docs/events.md). Returns counts and the sequence numbers that failed."""
    records = dead_letter_records(streams, message[DEAD_LETTER_KEY])
    outcome = publish(client, records, opts)
    failed = sorted(
        str(r["dynamodb"]["SequenceNumber"]) for r in records if str(r.get("eventID")) in outcome.failed
    )
    return {"records": len(records), "published": outcome.published, "failed": failed}
