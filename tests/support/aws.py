"""AWS stand-ins at the boto3 boundary: the table from template.yaml, the key set, seed data, and
botocore hooks that count calls or inject faults. Nothing of ours is replaced."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError, ReadTimeoutError

from authcore import keyrotation, runtime
from authcore.store import Store
from authcore.tokens import KeySet
from local import admin
from local import template as tpl

REGION = "us-east-1"
JWKS_SECRET = "token-service/jwks"  # the public key set (tests/conftest.py's JWKS_SECRET_ID)


def create_table(name: str, endpoint_url: str | None = None) -> None:
    template = tpl.load_template()
    ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint_url)
    ddb.create_table(TableName=name, **tpl.table_spec(template))
    ttl = tpl.ttl_attribute(template)
    assert ttl == "ttl"
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl})


def create_public_secret(sm: Any, jwks_secret_id: str = JWKS_SECRET) -> None:
    """The public key set's secret as the template creates it: a placeholder (kept if it exists)."""
    try:
        sm.create_secret(Name=jwks_secret_id, SecretString="{}")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
            raise


def create_keys(secret_id: str, endpoint_url: str | None = None, jwks_secret_id: str = JWKS_SECRET) -> None:
    """The two secrets as the template creates them, initialised as the first rotation does."""
    sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint_url)
    sm.create_secret(Name=secret_id, SecretString="{}")
    create_public_secret(sm, jwks_secret_id)
    keyrotation.rotate_now(sm, secret_id, 3600, jwks_secret_id)


@contextlib.contextmanager
def mock_secret(secret_id: str = "token-service/keys", initial: str | None = None) -> Iterator[Any]:
    """A Secrets Manager of its own (moto), holding the key set secret (a key set, or `initial` as
    given) and the public key set's secret (`JWKS_SECRET`: published, or a placeholder with `initial`)."""
    from moto import mock_aws

    with mock_aws():
        sm = boto3.client("secretsmanager", region_name=REGION)
        if initial is None:
            create_keys(secret_id)
        else:
            sm.create_secret(Name=secret_id, SecretString=initial)
            create_public_secret(sm)
        yield sm


def keyset(secret_id: str, endpoint_url: str | None = None) -> KeySet:
    sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint_url)
    return KeySet.parse(sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"])


@dataclass
class Seed:
    public_client: str
    confidential_client: str
    confidential_secret: str
    org_id: str
    other_org_id: str
    user: dict[str, str]
    multi_user: dict[str, str]
    lonely_user: dict[str, str]


def seed(table: str, secret_id: str, endpoint_url: str | None = None) -> Seed:
    store = Store(boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint_url), table)
    hmac = keyset(secret_id, endpoint_url).hmac
    admin.create_client(
        store, name="Demo CLI", client_type="public", grant_types=["device_code", "refresh_token"],
        scopes=["read", "write"], client_id="demo-cli",
    )  # fmt: skip
    conf = admin.create_client(
        store, name="Backend", client_type="confidential", grant_types=["device_code", "refresh_token"],
        scopes=["read", "write", "admin"], client_id="backend", hmac=hmac, introspection=True,
    )  # fmt: skip
    admin.create_client(
        store, name="Old CLI", client_type="public", grant_types=["device_code", "refresh_token"],
        scopes=["read"], client_id="old-cli", min_version="2.0.0",
    )  # fmt: skip
    admin.create_client(
        store, name="Refresh only", client_type="public", grant_types=["refresh_token"],
        scopes=["read"], client_id="no-device",
    )  # fmt: skip
    admin.create_organization(store, "Acme Corp", "acme")
    admin.create_organization(store, "Globex", "globex")
    # claims as the HTTP API's JWT authorizer passes them on (every value a string)
    user = {"sub": "user-1", "email": "ada@example.com", "email_verified": "true", "name": "Ada Lovelace"}
    multi = {"sub": "user-2", "email": "grace@example.com", "email_verified": "true", "name": "Grace Hopper"}
    lonely = {"sub": "user-3", "email": "nobody@example.com", "email_verified": "true", "name": "No Org"}
    admin.add_member(store, "user-1", "acme", "admin")
    admin.add_member(store, "user-2", "acme", "member")
    admin.add_member(store, "user-2", "globex", "owner")
    return Seed("demo-cli", "backend", conf["client_secret"], "acme", "globex", user, multi, lonely)


# ---------------------------------------------------------------- botocore hooks


class CallCounter:
    """Counts DynamoDB operations made by our code (a botocore event hook on the runtime's client)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def reset(self) -> None:
        self.calls.clear()


@contextlib.contextmanager
def count_dynamodb() -> Iterator[CallCounter]:
    counter = CallCounter()
    events = runtime.store().client.meta.events
    events.register("before-call.dynamodb", counter)
    try:
        yield counter
    finally:
        events.unregister("before-call.dynamodb", counter)


class _FakeHttp:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


def _fault(kind: str, operation: str) -> Any:
    def hook(model: Any, **_: Any) -> Any:
        if model.name != operation:
            return None
        if kind == "timeout":
            raise ReadTimeoutError(endpoint_url="https://dynamodb.local")
        if kind == "conflict":  # a transaction cancelled: another request was writing one of its items
            return _FakeHttp(400), {
                "Error": {"Code": "TransactionCanceledException", "Message": "injected"},
                "CancellationReasons": [{"Code": "None"}, {"Code": "None"}, {"Code": "TransactionConflict"}],
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        code, status = {
            "throttle": ("ProvisionedThroughputExceededException", 400),
            "error": ("InternalServerError", 500),
        }[kind]
        return _FakeHttp(status), {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    return hook


@contextlib.contextmanager
def inject(kind: str, service: str, operation: str) -> Iterator[None]:
    """Make one operation of one service fail (`throttle`, `error`, `timeout`, or for a transaction
    `conflict`) at the boto3 boundary."""
    client = runtime.store().client if service == "dynamodb" else runtime._secrets_provider().client
    hook = _fault(kind, operation)
    event = f"before-call.{client.meta.service_model.service_id.hyphenize()}"
    client.meta.events.register_first(event, hook)
    try:
        yield
    finally:
        client.meta.events.unregister(event, hook)


class LostAnswers:
    """A write DynamoDB applied whose answer never came back, then retried with the same parameters, as
    botocore retries a call that timed out. The first ``times`` calls of ``operation`` are each applied
    once more, out of band, just before the call itself goes: the call is then the retry."""

    def __init__(
        self, operation: str, times: int, which: Callable[[dict[str, Any]], bool] | None = None
    ) -> None:
        self.operation = operation
        self.left = times
        self.which = which  # only the calls it picks out (by their parameters); None: every call
        self.lost = 0

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name != self.operation or self.left <= 0:
            return
        if self.which is not None and not self.which(params):
            return
        self.left -= 1
        client = runtime.store().client
        side = boto3.client("dynamodb", region_name=REGION, endpoint_url=client.meta.endpoint_url)
        with contextlib.suppress(ClientError):
            method = next(m for m, op in client.meta.method_to_api_mapping.items() if op == self.operation)
            getattr(side, method)(**params)
        self.lost += 1


@contextlib.contextmanager
def lose_answers(
    operation: str, times: int = 1, which: Callable[[dict[str, Any]], bool] | None = None
) -> Iterator[LostAnswers]:
    """The next ``times`` calls of ``operation`` by the runtime's DynamoDB client (those ``which``
    picks out, when a request makes several): applied, answer lost, retried (see LostAnswers)."""
    hook = LostAnswers(operation, times, which)
    events = runtime.store().client.meta.events
    event = f"before-parameter-build.dynamodb.{operation}"
    events.register_first(event, hook)
    try:
        yield hook
    finally:
        events.unregister(event, hook)


def raw_item(table: str, pk: str, sk: str) -> dict[str, Any] | None:
    item = (
        boto3.client("dynamodb", region_name=REGION)
        .get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
        .get("Item")
    )
    return json.loads(json.dumps(item)) if item else None


__all__ = ["ClientError"]
