"""Security events: real item changes, read from the table's stream (moto's DynamoDB Streams), given to
the SecurityEventsFunction as Lambda gives them (after the event source mapping's filter, taken from
template.yaml), and read back from the bus (a rule on it that targets an SQS queue)."""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from authcore import keyrotation, runtime, security_events
from authcore.clock import Manual
from local import admin, lambda_host
from local.template import load_template
from tests.conftest import GRACE, SECRET, TABLE, Api
from tests.support import aws, forge
from tests.support.aws import Seed

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "events"
DEVICE_IP = "203.0.113.7"  # the device's address in these tests (TEST-NET-3)
STREAMS_ENDPOINT = (
    f"https://streams.dynamodb.{aws.REGION}.amazonaws.com"  # moto's (not the account-based one)
)
# Every member a detail may have: identifiers, a reason, a generation, a time. device_ip only when enabled.
IDENTIFIERS = {"event_id", "grant_id", "client_id", "user_id", "org_id", "reason", "generation", "time"}
KEY_IDS = {"kid", "next_kid"}
# What a grant item holds that no event may carry.
SENSITIVE = (
    "device_code_digest", "rt_digest", "rt_prev_digest", "user_code", "user_email", "user_name", "org_name",
    "device_ip", "device_user_agent",
)  # fmt: skip


# ---------------------------------------------------------------- the stream, the function, the bus


def template_function() -> dict[str, Any]:
    return load_template()["Resources"]["SecurityEventsFunction"]  # type: ignore[no-any-return]


def stream_filter() -> dict[str, Any]:
    (only,) = template_function()["Properties"]["Events"]["TableStream"]["Properties"]["FilterCriteria"][
        "Filters"
    ]
    return json.loads(only["Pattern"])  # type: ignore[no-any-return]


def matches(pattern: Any, value: Any) -> bool:
    """An event source mapping's filter (the subset of EventBridge patterns template.yaml uses)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and matches(p, value[k]) for k, p in pattern.items()
        )
    assert isinstance(pattern, list), pattern
    for option in pattern:
        if isinstance(option, dict):
            (kind, operand), *_ = option.items()
            assert kind == "prefix", option
            if isinstance(value, str) and value.startswith(operand):
                return True
        elif value == option:
            return True
    return False


def as_delivered(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record of the DynamoDB Streams API as Lambda delivers it: epoch seconds, the stream's ARN."""
    change = dict(record["dynamodb"])
    if isinstance(change.get("ApproximateCreationDateTime"), datetime):
        change["ApproximateCreationDateTime"] = int(change["ApproximateCreationDateTime"].timestamp())
    return {**json.loads(json.dumps({**record, "dynamodb": change})), "eventSourceARN": stream_arn}


class Stream:
    """The table's stream, enabled as template.yaml says, read from where the last read ended."""

    def __init__(self) -> None:
        spec = load_template()["Resources"]["Table"]["Properties"]["StreamSpecification"]
        ddb = boto3.client("dynamodb", region_name=aws.REGION)
        described = ddb.update_table(
            TableName=TABLE,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": spec["StreamViewType"]},
        )["TableDescription"]
        self.arn = described["LatestStreamArn"]
        self.client = boto3.client("dynamodbstreams", region_name=aws.REGION, endpoint_url=STREAMS_ENDPOINT)
        (shard,) = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        self.shard = shard["ShardId"]
        self.iterator = self.client.get_shard_iterator(
            StreamArn=self.arn, ShardId=self.shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def read(self) -> list[dict[str, Any]]:
        """Every record since the last read, as the stream has them (unfiltered)."""
        page = self.client.get_records(ShardIterator=self.iterator)
        self.iterator = page["NextShardIterator"]
        return [as_delivered(r, self.arn) for r in page["Records"]]

    def batch(self) -> list[dict[str, Any]]:
        """What the event source mapping gives the function: the records its filter lets through."""
        pattern = stream_filter()
        return [r for r in self.read() if matches(pattern, r)]


class Bus:
    """What arrives on the account's default bus from the service: a rule, an SQS queue as its target."""

    def __init__(self) -> None:
        self.sqs = boto3.client("sqs", region_name=aws.REGION)
        self.queue = self.sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]
        events = boto3.client("events", region_name=aws.REGION)
        events.put_rule(Name="security-events", EventPattern=json.dumps({"source": [security_events.SOURCE]}))
        events.put_targets(Rule="security-events", Targets=[{"Id": "queue", "Arn": arn["QueueArn"]}])

    def received(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return found


def handler() -> Any:
    return lambda_host.load_function("functions/security_events")


def function_client(name: str) -> Any:
    """The function's own client (``_events``, ``_streams``: built on first use, once per process)."""
    return client_builder(name)()


def client_builder(name: str) -> Any:
    return sys.modules[handler().__module__].__dict__[name]


def invoke(records: list[dict[str, Any]]) -> Any:
    return handler()({"Records": records}, lambda_host.LambdaContext())


@pytest.fixture
def options(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set the function's environment with `options.setenv(...)`; read afresh by each invocation."""
    security_events.options.cache_clear()
    yield monkeypatch
    security_events.options.cache_clear()


@pytest.fixture
def stream(account: Seed, options: pytest.MonkeyPatch) -> Stream:
    return Stream()


@pytest.fixture
def bus(account: Seed) -> Bus:
    return Bus()


def configure(options: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        options.setenv(name, value)
    security_events.options.cache_clear()


def deliver(stream: Stream, bus: Bus) -> list[dict[str, Any]]:
    """The stream's new records through the function (every one published), then what the bus got."""
    assert invoke(stream.batch()) == {"batchItemFailures": []}
    return bus.received()


def details(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in events if e["detail-type"] == kind]


def item(grant_id: str) -> dict[str, Any]:
    found = aws.raw_item(TABLE, f"GRANT#{grant_id}", "GRANT")
    assert found is not None
    return found


def grant_of_code(device_code: str) -> str:
    return device_code.split("_")[1]


def number(raw: dict[str, Any], name: str) -> int:
    return int(raw[name]["N"])


# ---------------------------------------------------------------- every event type, from the real flows


class Story:
    """Every flow that has an event, through the handlers, and what each left behind."""

    def __init__(self, api: Api, account: Seed, clock: Manual, stream: Stream, bus: Bus) -> None:
        self.events: list[dict[str, Any]] = []
        self.secrets: set[str] = set()
        store = runtime.store()
        created = admin.create_client(
            store, name="Ops CLI", client_type="public", grant_types=["device_code", "refresh_token"],
            scopes=["read"], client_id="ops-cli",
        )  # fmt: skip
        assert created["client_id"] == "ops-cli"
        assert store.set_client_disabled("ops-cli", True)
        # signed in, rotated, then the first token presented again after the grace: reuse
        started = self.device_code(api)
        assert api.approve(started["user_code"], account.user).status == 200
        first = api.exchange(started["device_code"])
        assert first.status == 200, first.text
        self.keep(first.json())
        rotated = api.call("POST", "/auth/refresh", body={"refresh_token": first.json()["refresh_token"]})
        assert rotated.status == 200, rotated.text
        self.keep(rotated.json())
        clock.advance(GRACE + 1)
        reused = api.call("POST", "/auth/refresh", body={"refresh_token": first.json()["refresh_token"]})
        assert reused.status == 401 and "already used" in reused.text, reused.text
        self.reused = grant_of_code(started["device_code"])
        # denied
        denied = self.device_code(api)
        deny = {"user_code": denied["user_code"], "decision": "deny"}
        assert api.call("POST", "/oauth/device/verify", body=deny, claims=account.multi_user).status == 200
        self.denied = grant_of_code(denied["device_code"])
        # signed in, then signed out by the app
        out = self.device_code(api)
        assert api.approve(out["user_code"], account.multi_user, organization_id="globex").status == 200
        signed = api.exchange(out["device_code"])
        assert signed.status == 200, signed.text
        self.keep(signed.json())
        logout = api.call("POST", "/auth/logout", body={"refresh_token": signed.json()["refresh_token"]})
        assert logout.status == 200, logout.text
        self.logged_out = grant_of_code(out["device_code"])
        for grant_id in (self.reused, self.denied, self.logged_out):  # what the items hold, digests and all
            held = item(grant_id)
            self.secrets |= {held[name]["S"] for name in SENSITIVE if name in held}
        self.secrets |= {account.confidential_secret, DEVICE_IP, "127.0.0.1"}
        self.secrets |= {account.user["email"], account.multi_user["email"], account.user["name"]}
        keys = json.loads(
            boto3.client("secretsmanager", region_name=aws.REGION).get_secret_value(SecretId=SECRET)[
                "SecretString"
            ]
        )
        self.secrets |= {keys["hmac_key"], *(k["private_pem"] for k in keys["keys"])}
        self.events = deliver(stream, bus)

    def device_code(self, api: Api) -> dict[str, Any]:
        result = api.call("POST", "/oauth/device/code", form={"client_id": "demo-cli"}, source_ip=DEVICE_IP)
        assert result.status == 200, result.text
        self.keep(result.json())
        return result.json()  # type: ignore[no-any-return]

    def keep(self, answer: dict[str, Any]) -> None:
        """The secrets an answer holds (codes and tokens)."""
        for name in ("device_code", "user_code", "access_token", "refresh_token", "id_token"):
            if answer.get(name):
                self.secrets |= {answer[name], answer[name].replace("-", "")}


@pytest.fixture
def story(api: Api, account: Seed, clock: Manual, stream: Stream, bus: Bus, options: Any) -> Story:
    configure(options, SESSION_ROTATED_SAMPLE_RATE="1")
    return Story(api, account, clock, stream, bus)


def test_every_event_type_comes_from_the_change_that_means_it(story: Story, account: Seed) -> None:
    events = story.events
    assert {e["detail-type"] for e in events} == security_events.DETAIL_TYPES - {security_events.KEYS_ROTATED}
    assert all(e["source"] == "token-service" for e in events)
    assert all(
        e["resources"] == [f"arn:aws:dynamodb:{aws.REGION}:123456789012:table/{TABLE}"] for e in events
    )

    reused, denied, out = item(story.reused), item(story.denied), item(story.logged_out)
    iso = security_events.iso
    assert [d["client_id"] for d in details(events, "client.created")] == ["ops-cli"]
    assert [d["client_id"] for d in details(events, "client.disabled")] == ["ops-cli"]
    assert sorted(d["grant_id"] for d in details(events, "device.authorized")) == sorted(
        [story.reused, story.denied, story.logged_out]
    )
    (approved_first, approved_out) = details(events, "device.approved")
    assert (approved_first["grant_id"], approved_first["user_id"], approved_first["org_id"]) == (
        story.reused, "user-1", "acme",
    )  # fmt: skip
    assert (approved_out["user_id"], approved_out["org_id"]) == ("user-2", "globex")
    assert approved_first["time"] == iso(number(reused, "decided_at"))
    assert details(events, "device.denied") == [
        {
            "event_id": details(events, "device.denied")[0]["event_id"],
            "grant_id": story.denied,
            "client_id": "demo-cli",
            "user_id": "user-2",
            "org_id": None,
            "time": iso(number(denied, "decided_at")),
        }
    ]
    issued = {d["grant_id"]: d for d in details(events, "session.issued")}
    assert set(issued) == {story.reused, story.logged_out}
    assert issued[story.reused]["generation"] == 1
    assert issued[story.reused]["time"] == iso(number(reused, "issued_at"))
    (rotated,) = details(events, "session.rotated")
    assert (rotated["grant_id"], rotated["generation"]) == (story.reused, 2)
    (reuse,) = details(events, "session.reuse_detected")
    assert (reuse["grant_id"], reuse["user_id"], reuse["time"]) == (
        story.reused, "user-1", iso(number(reused, "revoked_at")),
    )  # fmt: skip
    revoked = {d["grant_id"]: d for d in details(events, "session.revoked")}
    assert revoked[story.reused]["reason"] == "reuse"
    assert revoked[story.logged_out]["reason"] == "logout"
    assert revoked[story.logged_out]["time"] == iso(number(out, "revoked_at"))
    # one event per change: nothing twice, nothing for polls, user codes or other items
    assert len({e["detail"]["event_id"] for e in events}) == len(events) == 14


def test_no_detail_holds_a_secret_an_ip_address_an_email_or_a_digest(story: Story) -> None:
    assert story.events and len(story.secrets) > 20
    for event in story.events:
        detail = event["detail"]
        assert set(detail) <= IDENTIFIERS, event["detail-type"]  # no device_ip unless the operator said so
        text = json.dumps(detail)
        values = [v for v in detail.values() if isinstance(v, str)]
        assert [s for s in story.secrets if any(s in v for v in values)] == [], text
        assert "@" not in text and not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", text), text
        assert not any(v.startswith(("rt_", "dc_", "cs_", "ey")) for v in values), text


def schema(kind: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{kind}.schema.json").read_text())  # type: ignore[no-any-return]


def test_every_detail_is_valid_against_its_schema(story: Story) -> None:
    for event in story.events:
        jsonschema.Draft202012Validator(schema(event["detail-type"])).validate(event["detail"])
    # and the schemas can fail: a detail with a member more, one less, or a reason of its own is refused
    detail = details(story.events, "session.revoked")[0]
    validator = jsonschema.Draft202012Validator(schema("session.revoked"))
    for wrong in (
        {**detail, "user_email": "ada@example.com"},
        {k: v for k, v in detail.items() if k != "reason"},
        {**detail, "reason": "revoked"},
        {**detail, "time": "2026-11-30 09:00:00"},
    ):
        assert not validator.is_valid(wrong), wrong


def test_the_schemas_are_one_per_detail_type_and_say_what_is_required() -> None:
    names = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}
    assert names == security_events.DETAIL_TYPES
    assert {p.name for p in SCHEMAS.iterdir()} == {f"{n}.schema.json" for n in names}
    for name in names:
        document = schema(name)
        jsonschema.Draft202012Validator.check_schema(document)
        assert document["additionalProperties"] is False, name
        assert set(document["properties"]) <= IDENTIFIERS | KEY_IDS | {"device_ip"}, name
        assert {"event_id", "time"} <= set(document["required"]), name
        assert "device_ip" not in document["required"], name


# ---------------------------------------------------------------- options


def test_session_rotated_is_off_by_default(api: Api, account: Seed, stream: Stream, bus: Bus) -> None:
    signed = api.signed_in(account)
    for _ in range(3):
        answer = api.call("POST", "/auth/refresh", body={"refresh_token": signed["refresh_token"]})
        assert answer.status == 200, answer.text
        signed = answer.json()
    events = deliver(stream, bus)
    assert [e["detail-type"] for e in events] == ["device.authorized", "device.approved", "session.issued"]
    assert security_events.options().session_rotated_sample_rate == 0.0


def test_session_rotated_is_sampled_by_the_rotation_itself() -> None:
    """A record delivered again decides as it did; the share taken follows the rate."""
    rotations = [(uuid.uuid4().hex, g) for g in range(1, 5) for _ in range(250)]
    taken = [r for r in rotations if security_events.sampled(*r, rate=0.25)]
    assert 150 < len(taken) < 350
    assert taken == [r for r in rotations if security_events.sampled(*r, rate=0.25)]
    assert not any(security_events.sampled(*r, rate=0.0) for r in rotations)
    assert all(security_events.sampled(*r, rate=1.0) for r in rotations)


def test_the_device_ip_is_in_the_device_events_only_when_enabled(
    api: Api, account: Seed, stream: Stream, bus: Bus, options: pytest.MonkeyPatch
) -> None:
    configure(options, EVENTS_INCLUDE_DEVICE_IP="true")
    started = api.call(
        "POST", "/oauth/device/code", form={"client_id": "demo-cli"}, source_ip=DEVICE_IP
    ).json()
    assert api.approve(started["user_code"], account.user).status == 200
    assert api.exchange(started["device_code"]).status == 200
    events = deliver(stream, bus)
    assert {e["detail-type"]: e["detail"].get("device_ip") for e in events} == {
        "device.authorized": DEVICE_IP,
        "device.approved": DEVICE_IP,
        "session.issued": DEVICE_IP,
    }
    for event in events:
        jsonschema.Draft202012Validator(schema(event["detail-type"])).validate(event["detail"])


def test_a_misconfigured_sample_rate_names_the_variable_not_its_value(options: pytest.MonkeyPatch) -> None:
    configure(options, SESSION_ROTATED_SAMPLE_RATE="1.5")
    with pytest.raises(RuntimeError, match="SESSION_ROTATED_SAMPLE_RATE") as raised:
        security_events.options()
    assert "1.5" not in str(raised.value)


@pytest.mark.parametrize("reason", ["user", "admin"])
def test_who_ended_a_session_is_its_reason(
    api: Api, account: Seed, clock: Manual, stream: Stream, bus: Bus, reason: str
) -> None:
    signed = api.signed_in(account)
    grant_id = forge.grant_of(signed["refresh_token"])
    runtime.store().revoke_family(grant_id, int(clock()), reason)
    (revoked,) = details(deliver(stream, bus), "session.revoked")
    assert (revoked["grant_id"], revoked["reason"]) == (grant_id, reason)


# ---------------------------------------------------------------- failures: retried, then kept


def refuse_entries_of(client: Any, grant_id: str) -> Any:
    """PutEvents refuses the entries of one grant (at the boto3 boundary: its Detail arrives malformed,
    and the bus answers for that entry alone, with FailedEntryCount)."""

    def hook(params: dict[str, Any], **_: Any) -> None:
        for entry in params.get("Entries", []):
            if json.loads(entry["Detail"]).get("grant_id") == grant_id:
                entry["Detail"] = "{"

    client.meta.events.register("before-parameter-build.eventbridge.PutEvents", hook)
    return hook


def test_an_entry_the_bus_refuses_fails_its_record_and_no_other(api: Api, stream: Stream, bus: Bus) -> None:
    grants = [grant_of_code(api.device_code()["device_code"]) for _ in range(3)]
    records = stream.batch()
    assert len(records) == 3  # the grants; their user codes are filtered out
    client = function_client("_events")
    hook = refuse_entries_of(client, grants[1])
    try:
        answer = invoke(records)
    finally:
        client.meta.events.unregister("before-parameter-build.eventbridge.PutEvents", hook)
    refused = next(r for r in records if r["dynamodb"]["Keys"]["pk"]["S"] == f"GRANT#{grants[1]}")
    assert answer == {"batchItemFailures": [{"itemIdentifier": refused["dynamodb"]["SequenceNumber"]}]}
    assert sorted(d["grant_id"] for d in details(bus.received(), "device.authorized")) == sorted(
        [grants[0], grants[2]]
    )
    # Lambda retries the failed record: its event arrives then
    assert invoke([refused]) == {"batchItemFailures": []}
    assert [e["detail"]["grant_id"] for e in bus.received()] == [grants[1]]


def test_events_go_ten_a_call_and_a_failed_call_fails_only_its_records(
    api: Api, stream: Stream, bus: Bus
) -> None:
    for _ in range(12):
        api.device_code()
    records = stream.batch()
    assert len(records) == 12
    client = function_client("_events")
    calls: list[int] = []

    def deny_the_second_call(params: dict[str, Any], **_: Any) -> None:
        calls.append(len(params["Entries"]))
        if len(calls) == 2:
            raise aws.ClientError({"Error": {"Code": "AccessDeniedException", "Message": "x"}}, "PutEvents")

    client.meta.events.register("before-parameter-build.eventbridge.PutEvents", deny_the_second_call)
    try:
        answer = invoke(records)
    finally:
        client.meta.events.unregister("before-parameter-build.eventbridge.PutEvents", deny_the_second_call)
    assert calls == [10, 2]
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in records[10:]]
    }
    assert len(details(bus.received(), "device.authorized")) == 10


def test_a_batch_that_cannot_be_published_at_all_fails_whole(
    api: Api, stream: Stream, bus: Bus, options: pytest.MonkeyPatch
) -> None:
    """No such bus: every record fails, and the invocation fails (Lambda retries the batch, bisects it,
    and finally sends it to the dead-letter queue)."""
    configure(options, EVENT_BUS_NAME="no-such-bus")
    api.device_code()
    api.device_code()
    with pytest.raises(BatchProcessingError):
        invoke(stream.batch())
    assert bus.received() == []


def test_an_unreadable_record_fails_alone(api: Api, stream: Stream, bus: Bus) -> None:
    api.device_code()
    api.device_code()
    good, bad = stream.batch()
    bad["dynamodb"]["NewImage"].pop("grant_id")
    answer = invoke([good, bad])
    assert answer == {"batchItemFailures": [{"itemIdentifier": bad["dynamodb"]["SequenceNumber"]}]}
    assert len(bus.received()) == 1


def test_a_dead_letter_message_is_replayed_with_the_same_event_ids(
    api: Api, account: Seed, stream: Stream, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Lambda sends to the dead-letter queue names the batch (shard, first and last sequence
    number); the function, invoked with it, publishes that batch's events again."""
    api.signed_in(account)
    api.device_code()  # after the batch: not replayed
    records = stream.read()
    delivered = deliver_all(records, bus)
    batch = [r for r in records if r["dynamodb"]["Keys"]["pk"]["S"].startswith("GRANT#")][:3]
    message = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "version": "1.0",
        "DDBStreamBatchInfo": {
            "shardId": stream.shard,
            "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
            "batchSize": len(batch),
            "streamArn": stream.arn,
        },
    }
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", STREAMS_ENDPOINT)
    client_builder("_streams").cache_clear()
    try:
        answer = handler()(message, lambda_host.LambdaContext())
    finally:
        client_builder("_streams").cache_clear()
    replayed = bus.received()
    assert answer["failed"] == [] and answer["published"] == len(replayed) == 3
    assert [e["detail-type"] for e in replayed] == ["device.authorized", "device.approved", "session.issued"]
    first = {e["detail"]["event_id"]: e["detail"] for e in delivered}
    assert all(first[e["detail"]["event_id"]] == e["detail"] for e in replayed)  # duplicates, recognisably


def deliver_all(records: list[dict[str, Any]], bus: Bus) -> list[dict[str, Any]]:
    pattern = stream_filter()
    assert invoke([r for r in records if matches(pattern, r)]) == {"batchItemFailures": []}
    return bus.received()


# ---------------------------------------------------------------- keys.rotated


def rotate(handler_: Any) -> None:
    token = str(uuid.uuid4())
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        handler_({"SecretId": SECRET, "ClientRequestToken": token, "Step": step}, lambda_host.LambdaContext())


def current_keys() -> dict[str, str]:
    doc = json.loads(
        boto3.client("secretsmanager", region_name=aws.REGION).get_secret_value(
            SecretId=SECRET, VersionStage="AWSCURRENT"
        )["SecretString"]
    )
    return {k["status"]: k["kid"] for k in doc["keys"] if k["status"] != "previous"}


def test_key_rotation_announces_keys_rotated(account: Seed, bus: Bus, options: Any) -> None:
    rotate(lambda_host.load_function("functions/key_rotation"))
    keys = current_keys()
    (event,) = bus.received()
    assert event["detail-type"] == "keys.rotated" and event["source"] == "token-service"
    assert event["detail"]["kid"] == keys["current"] and event["detail"]["next_kid"] == keys["next"]
    jsonschema.Draft202012Validator(schema("keys.rotated")).validate(event["detail"])
    assert "PRIVATE" not in json.dumps(event)


def test_a_rotation_whose_event_cannot_be_put_still_rotates(
    account: Seed, bus: Bus, options: pytest.MonkeyPatch, captured_logs: Any
) -> None:
    configure(options, EVENT_BUS_NAME="no-such-bus")
    before = current_keys()
    rotate(lambda_host.load_function("functions/key_rotation"))
    after = current_keys()
    assert after["current"] == before["next"]  # rotated, and published:
    sm = boto3.client("secretsmanager", region_name=aws.REGION)
    jwks = json.loads(sm.get_secret_value(SecretId=aws.JWKS_SECRET)["SecretString"])
    assert after["next"] in {k["kid"] for k in jwks["keys"]}
    assert bus.received() == []
    (line,) = [json.loads(x) for x in captured_logs.lines if "keys.rotated was not published" in x]
    assert line["error_code"] == "ResourceNotFoundException"


def test_announce_never_raises(account: Seed) -> None:
    class Broken:
        def put_events(self, **_: Any) -> Any:
            raise RuntimeError("boom")

    doc = json.loads(
        boto3.client("secretsmanager", region_name=aws.REGION).get_secret_value(SecretId=SECRET)[
            "SecretString"
        ]
    )
    assert keyrotation.announce(Broken(), doc, SECRET) is False
    assert keyrotation.announce(boto3.client("events", region_name=aws.REGION), doc, SECRET) is True


# ---------------------------------------------------------------- template.yaml


def test_the_template_wires_the_stream_the_function_and_the_dead_letter_queue() -> None:
    template = load_template()
    resources = template["Resources"]
    assert resources["Table"]["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    function = template_function()["Properties"]
    source = function["Events"]["TableStream"]
    assert source["Type"] == "DynamoDB"
    properties = source["Properties"]
    assert properties["Stream"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    assert 0 < properties["MaximumRetryAttempts"] <= 10
    assert (
        properties["MaximumRecordAgeInSeconds"] < 24 * 3600
    )  # failed batches reach the DLQ in time to replay
    dlq = properties["DestinationConfig"]["OnFailure"]
    assert dlq["Type"] == "SQS" and dlq["Destination"] == {
        "Fn::GetAtt": ["SecurityEventsDeadLetterQueue", "Arn"]
    }
    queue = resources["SecurityEventsDeadLetterQueue"]
    assert queue["Type"] == "AWS::SQS::Queue" and queue["Properties"]["SqsManagedSseEnabled"] is True
    assert template["Outputs"]["SecurityEventsDeadLetterQueueUrl"]["Value"] == {
        "Ref": "SecurityEventsDeadLetterQueue"
    }
    bus = {"Fn::If": ["HasEventBusName", {"Ref": "EventBusName"}, "default"]}
    env = function["Environment"]["Variables"]
    assert env == {
        "EVENT_BUS_NAME": bus,
        "SESSION_ROTATED_SAMPLE_RATE": {"Ref": "SessionRotatedSampleRate"},
        "EVENTS_INCLUDE_DEVICE_IP": {"Ref": "EventsIncludeDeviceIp"},
    }
    assert resources["KeyRotationFunction"]["Properties"]["Environment"]["Variables"]["EVENT_BUS_NAME"] == bus
    parameters = template["Parameters"]
    assert [parameters[p]["Default"] for p in ("EventBusName", "SessionRotatedSampleRate", "EventsIncludeDeviceIp")] == [
        "", 0, "false",
    ]  # fmt: skip
    assert template["Conditions"]["HasEventBusName"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "EventBusName"}, ""]}]
    }


def test_the_stream_filter_lets_through_exactly_the_items_that_have_events() -> None:
    pattern = stream_filter()
    prefixes = [option["prefix"] for option in pattern["dynamodb"]["Keys"]["pk"]["S"]]
    assert tuple(prefixes) == security_events.PREFIXES
    assert pattern["eventName"] == ["INSERT", "MODIFY"]

    def record(name: str, pk: str) -> dict[str, Any]:
        return {"eventName": name, "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": "X"}}}}

    assert matches(pattern, record("MODIFY", "GRANT#abc"))
    assert matches(pattern, record("INSERT", "CLIENT#abc"))
    assert not matches(pattern, record("REMOVE", "GRANT#abc"))
    assert not matches(pattern, record("INSERT", "USERCODE#ABCD"))
