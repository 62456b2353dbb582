"""The DynamoDB adapter. Every item shape and every condition expression lives here and only here.

One table, ``pk``/``sk`` strings, ``ttl`` (epoch seconds) as the TTL attribute. DynamoDB deletes
expired items up to two days late and returns them until then, so every read and every condition
checks expiry itself; ``ttl`` only collects garbage.

Items:
- ``CLIENT#<id>`` / ``CLIENT``: a registered client.
- ``ORG#<id>`` / ``ORG``: an organization.
- ``USER#<sub>`` / ``ORG#<org id>``: a membership (role and the organization's name).
- ``USERCODE#<code>`` / ``USERCODE``: the user code of a pending device request, pointing to its grant.
- ``GRANT#<id>`` / ``GRANT``: one login, whole: the device request, the decision with a snapshot of the
  user and organization, then the refresh-token family (current and previous digest, generation).
- ``RATE#verify#<sub>`` / ``WINDOW#<start>``: wrong user codes a user typed in one window.
- ``RATE#device#<address>`` / ``WINDOW#<start>``: device authorization requests from one source address
  (an IPv4 address, or an IPv6 /64) in one window.
- ``RATE#client#<client id>#<shard>`` / ``WINDOW#<start>``: a client's device authorization requests in
  one window, spread over a few shards so that no one item takes a busy client's every write.

Indexes (keys only, sparse): ``ByUser``, ``ByOrg``, ``ByClient`` on ``session_user``/``session_org``/
``session_client`` with ``session_at`` (issued at): a grant is in them from its redemption until it is
revoked, so they list live sessions (and ones expired but not yet collected: checked in code).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Self, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_ser = TypeSerializer()
_de = TypeDeserializer()


# The attribute-value mapping of the types this table holds (str, int, bool, None, lists and maps of
# them), written out: boto3's TypeSerializer and TypeDeserializer are generic (a chain of type checks
# per value, Decimal for every number), and a grant has ~40 attributes read and written on every
# token request (bench/README.md). Anything else (sets, bytes, Decimal) goes to boto3's own rules;
# tests/unit/test_store_codec.py holds the two to the same answers.
def _av(value: Any) -> dict[str, Any]:
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int:
        return {"N": str(value)}
    if kind is bool:
        return {"BOOL": value}
    if kind is list:
        return {"L": [_av(v) for v in value]}
    if kind is dict:
        return {"M": {k: _av(v) for k, v in value.items()}}
    if value is None:
        return {"NULL": True}
    return cast(dict[str, Any], _ser.serialize(value))


def _number(text: str) -> int:
    """This table's numbers are integers (epoch seconds, counters, lifetimes)."""
    try:
        return int(text)
    except ValueError:
        return int(_de.deserialize({"N": text}))


def _py(value: dict[str, Any]) -> Any:
    if "S" in value:
        return value["S"]
    if "N" in value:
        return _number(value["N"])
    if "BOOL" in value:
        return value["BOOL"]
    if "L" in value:
        return [_py(v) for v in value["L"]]
    if "M" in value:
        return {k: _py(v) for k, v in value["M"].items()}
    if "NULL" in value:
        return None
    return _de.deserialize(cast(Any, value))


def _to_ddb(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _av(v) for k, v in item.items() if v is not None}


def _from_ddb(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _py(v) for k, v in item.items()}


def _values(**values: Any) -> dict[str, Any]:
    return {f":{k}": _av(v) for k, v in values.items()}


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return names


@dataclass
class Record:
    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Self:
        names = _field_names(cls)
        return cls(**{k: _py(v) for k, v in item.items() if k in names})


@dataclass
class ClientRecord(Record):
    client_id: str
    name: str
    client_type: str  # "public" | "confidential"
    grant_types: list[str]
    scopes: list[str]
    secret_digest: str | None = None
    min_version: str | None = None
    disabled: bool = False
    created_at: int = 0
    introspection: bool = False  # may introspect other clients' tokens (a resource server), RFC 7662 §4
    # Per-client policy (None: the deployment's setting); see clients.policy. Taken by new grants.
    access_token_ttl_seconds: int | None = None
    refresh_token_ttl_seconds: int | None = None
    refresh_idle_timeout_seconds: int | None = None  # 0: no idle timeout for this client
    rotation_grace_seconds: int | None = None
    device_code_ttl_seconds: int | None = None
    poll_interval_seconds: int | None = None
    device_authorizations_per_window: int | None = None  # 0: no limit for this client

    @property
    def confidential(self) -> bool:
        return self.client_type == "confidential"


@dataclass
class Organization(Record):
    org_id: str
    name: str
    created_at: int = 0


@dataclass
class Membership(Record):
    user_id: str
    org_id: str
    org_name: str
    role: str
    created_at: int = 0


@dataclass
class Grant(Record):
    grant_id: str
    client_id: str
    scope: str
    status: str  # pending | approved | denied | issued
    device_code_digest: str
    user_code: str
    created_at: int
    expires_at: int  # the device code's expiry
    interval: int
    last_poll_at: int | None = None
    user_id: str | None = None
    user_email: str | None = None
    user_name: str | None = None
    org_id: str | None = None
    org_name: str | None = None
    org_role: str | None = None
    decided_at: int | None = None
    issued_at: int | None = None
    rt_digest: str | None = None
    rt_prev_digest: str | None = None
    rt_generation: int = 0
    rt_rotated_at: int | None = None
    family_expires_at: int | None = None
    revoked_at: int | None = None
    revoke_reason: str | None = None
    # the scope as a list: a refresh's narrowing is checked in its condition
    scope_list: list[str] | None = None
    # the device that asked (RFC 8628 §5.4), shown to the person who decides; never a secret
    device_ip: str | None = None
    device_user_agent: str | None = None
    device_client_version: str | None = None
    device_country: str | None = None
    device_city: str | None = None
    # the client's policy when the session began (clients.policy), kept for the session's life
    access_ttl: int | None = None
    idle_timeout: int | None = None  # None: no idle timeout
    rotation_grace: int | None = None
    idle_expires_at: int | None = None  # the family ends unless used before this (moved by each rotation)
    ttl: int = 0

    @property
    def ends_at(self) -> int:
        """When the session ends if nothing else happens: the earlier of its two limits."""
        family = self.family_expires_at or 0
        return min(family, self.idle_expires_at) if self.idle_expires_at is not None else family


class Rejected(Exception):
    """A conditional write did not hold; ``old`` is the item as it was (None when there was none)."""

    def __init__(self, old: Grant | None) -> None:
        super().__init__("condition failed")
        self.old = old


class UserCodeTaken(Exception):
    """Another live device request holds this user code."""


@dataclass(frozen=True)
class Quota:
    """One more device authorization request on a counter (a source address's, or a shard of a
    client's) in the window starting at ``window``, if the counter is under ``limit``."""

    counter: str  # "device#<address>" | "client#<client id>#<shard>"
    window: int
    limit: int
    ttl: int
    kind: str = "address"  # address | client: what the refusal says


class QuotaExceeded(Exception):
    """A counter has no requests left in its window: nothing was written."""

    def __init__(self, quota: Quota) -> None:
        super().__init__(quota.kind)
        self.quota = quota


NO_IDLE_TIMEOUT = 10 * 366 * 86400  # longer than any family lives
# A session listing page: at most this many (BatchGetItem reads at most 100 items per call).
SESSIONS_PAGE = 100
SESSION_INDEXES = {"user": ("ByUser", "session_user"), "org": ("ByOrg", "session_org"),
                   "client": ("ByClient", "session_client")}  # fmt: skip


# Item operations whose successful answer botocore would only copy: DynamoDB answers JSON whose
# attribute values are already the shape the client hands back (numbers as strings), so the adapter
# reads it with json.loads instead of walking botocore's output shapes (~40 attribute-value
# structures per grant, ~100 us of a token request's CPU: bench/README.md). Not for answers that hold
# binary values (botocore decodes their base64), errors (botocore's error parsing), or any other
# protocol than JSON; botocore's own parser still adds the response metadata.
PLAIN_JSON_OPERATIONS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
                         "BatchWriteItem", "TransactWriteItems", "TransactGetItems")  # fmt: skip
_decode_json = json.JSONDecoder().decode


def read_json_answer(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """botocore's ``before-parse`` hook: take a plain JSON answer whole, leave botocore an empty one."""
    body = response_dict.get("body")
    if (
        response_dict.get("status_code") != 200
        or type(body) is not bytes
        or not str(response_dict["headers"].get("content-type", "")).startswith("application/x-amz-json")
        or b'"B":' in body
        or b'"BS":' in body
    ):
        return
    try:
        answer = _decode_json(body.decode("utf-8"))
    except ValueError:  # not JSON (a body damaged in transit): botocore's parse, CRC32 check and retry
        return
    if type(answer) is dict:
        customized_response_dict.update(answer)
        response_dict["body"] = b"{}"


class Store:
    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table = table_name
        for operation in PLAIN_JSON_OPERATIONS:
            client.meta.events.register(
                f"before-parse.dynamodb.{operation}", read_json_answer, unique_id=f"authcore-json-{operation}"
            )

    # ------------------------------------------------------------ plumbing

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table, Key=_to_ddb({"pk": pk, "sk": sk}), ConsistentRead=True
        )
        item = response.get("Item")
        return dict(item) if item else None

    def _update_grant(
        self, grant_id: str, update: str, condition: str, values: dict[str, Any], names: dict[str, str]
    ) -> Grant:
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=_to_ddb({"pk": f"GRANT#{grant_id}", "sk": "GRANT"}),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                **({"ExpressionAttributeNames": names} if names else {}),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _condition_failed(exc):
                old = cast(dict[str, Any] | None, exc.response.get("Item"))
                raise Rejected(Grant.from_item(old) if old else None) from None
            raise
        return Grant.from_item(response["Attributes"])

    # ------------------------------------------------------------ clients, organizations, memberships

    def get_client(self, client_id: str) -> ClientRecord | None:
        item = self._get(f"CLIENT#{client_id}", "CLIENT")
        return ClientRecord.from_item(item) if item else None

    def put_client(self, client: ClientRecord) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=_to_ddb({"pk": f"CLIENT#{client.client_id}", "sk": "CLIENT", **asdict(client)}),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def set_client_disabled(self, client_id: str, disabled: bool) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_to_ddb({"pk": f"CLIENT#{client_id}", "sk": "CLIENT"}),
                UpdateExpression="SET disabled = :d",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=_values(d=disabled),
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def update_client(self, client_id: str, changes: dict[str, Any]) -> ClientRecord | None:
        """Set (or, for None, remove) fields of a client record; None when there is no such client.
        Only policy fields change this way (admin clients update): never its id, type or secret."""
        allowed = {f.name for f in fields(ClientRecord)} - {
            "client_id",
            "client_type",
            "secret_digest",
            "created_at",
        }
        if not changes or set(changes) - allowed:
            raise ValueError(f"cannot update {sorted(set(changes) - allowed) or 'nothing'}")
        names = {f"#f{i}": name for i, name in enumerate(changes)}
        sets = [f"#f{i} = :v{i}" for i, value in enumerate(changes.values()) if value is not None]
        removes = [f"#f{i}" for i, value in enumerate(changes.values()) if value is None]
        update = (f"SET {', '.join(sets)} " if sets else "") + (
            f"REMOVE {', '.join(removes)}" if removes else ""
        )
        values = {f":v{i}": _av(v) for i, v in enumerate(changes.values()) if v is not None}
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=_to_ddb({"pk": f"CLIENT#{client_id}", "sk": "CLIENT"}),
                UpdateExpression=update.strip(),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                **({"ExpressionAttributeValues": values} if values else {}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return None
            raise
        return ClientRecord.from_item(response["Attributes"])

    def _scan_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """Admin listings only (never on a request path)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": _values(p=prefix),
        }
        while True:
            page = self.client.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def list_clients(self) -> list[ClientRecord]:
        return sorted(
            (ClientRecord.from_item(i) for i in self._scan_prefix("CLIENT#")), key=lambda c: c.client_id
        )

    def put_organization(self, org: Organization) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=_to_ddb({"pk": f"ORG#{org.org_id}", "sk": "ORG", **asdict(org)}),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get_organization(self, org_id: str) -> Organization | None:
        item = self._get(f"ORG#{org_id}", "ORG")
        return Organization.from_item(item) if item else None

    def list_organizations(self) -> list[Organization]:
        return sorted((Organization.from_item(i) for i in self._scan_prefix("ORG#")), key=lambda o: o.org_id)

    def put_membership(self, membership: Membership) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=_to_ddb(
                {"pk": f"USER#{membership.user_id}", "sk": f"ORG#{membership.org_id}", **asdict(membership)}
            ),
        )

    def delete_membership(self, user_id: str, org_id: str) -> bool:
        """Admin only (no function may delete). False when there was no such membership."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=_to_ddb({"pk": f"USER#{user_id}", "sk": f"ORG#{org_id}"}),
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def memberships(self, user_id: str) -> list[Membership]:
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :org)",
            ExpressionAttributeValues=_values(pk=f"USER#{user_id}", org="ORG#"),
            ConsistentRead=True,
        )
        return [Membership.from_item(i) for i in response.get("Items", [])]

    # ------------------------------------------------------------ device requests

    def create_device_grant(self, grant: Grant, now: int, quotas: Sequence[Quota] = ()) -> None:
        """The grant and its user code, both or neither, in one call. The user code must be free
        (or held only by an expired request that DynamoDB has not collected yet). Each of ``quotas``
        (the source address's counter, the client's) is taken in the same transaction: over a limit,
        nothing is written (QuotaExceeded). A lost answer retried by botocore carries the same
        ClientRequestToken (botocore fills it once per call), so DynamoDB applies it once."""
        grant_item = {"pk": f"GRANT#{grant.grant_id}", "sk": "GRANT", **asdict(grant)}
        code_item = {
            "pk": f"USERCODE#{grant.user_code}",
            "sk": "USERCODE",
            "grant_id": grant.grant_id,
            "expires_at": grant.expires_at,
            "ttl": grant.expires_at,
        }
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": _to_ddb(grant_item),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": _to_ddb(code_item),
                            "ConditionExpression": "attribute_not_exists(pk) OR expires_at <= :now",
                            "ExpressionAttributeValues": _values(now=now),
                        }
                    },
                    *(self._quota_update(quota) for quota in quotas),
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                failed = [
                    r.get("Code") == "ConditionalCheckFailed"
                    for r in exc.response.get("CancellationReasons") or []
                ]
                if failed and failed[0]:
                    # The grant's id is new and random: if it exists, this very call wrote it, and its
                    # answer was lost and the call retried (DynamoDB recognises botocore's retry by its
                    # ClientRequestToken too; this does not depend on it).
                    return
                for quota, refused in zip(quotas, failed[2:], strict=False):
                    if refused:
                        raise QuotaExceeded(quota) from None
                if any(failed[:2]):
                    raise UserCodeTaken from None
            raise

    def _quota_update(self, quota: Quota) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": _to_ddb({"pk": f"RATE#{quota.counter}", "sk": f"WINDOW#{quota.window}"}),
                "UpdateExpression": "ADD requests :one SET #ttl = :ttl",
                "ConditionExpression": "attribute_not_exists(requests) OR requests < :limit",
                "ExpressionAttributeValues": _values(one=1, ttl=quota.ttl, limit=quota.limit),
                "ExpressionAttributeNames": {"#ttl": "ttl"},
            }
        }

    def device_requests(self, address: str, window: int) -> int:
        item = self._get(f"RATE#device#{address}", f"WINDOW#{window}")
        return int(_from_ddb(item)["requests"]) if item else 0

    def grant_id_for_user_code(self, user_code: str, now: int) -> str | None:
        item = self._get(f"USERCODE#{user_code}", "USERCODE")
        if not item:
            return None
        data = _from_ddb(item)
        if int(data["expires_at"]) <= now:
            return None
        return str(data["grant_id"])

    def get_grant(self, grant_id: str) -> Grant | None:
        item = self._get(f"GRANT#{grant_id}", "GRANT")
        return Grant.from_item(item) if item else None

    def decide(
        self,
        grant_id: str,
        now: int,
        *,
        approve: bool,
        user: dict[str, str],
        org: Membership | None,
    ) -> Grant:
        """pending -> approved (with the user and organization snapshot) or denied."""
        values = _values(
            pending="pending",
            now=now,
            status="approved" if approve else "denied",
            uid=user["id"],
            email=user["email"],
            uname=user["name"],
        )
        update = (
            "SET #s = :status, decided_at = :now, user_id = :uid, user_email = :email, user_name = :uname"
        )
        if org is not None:
            values |= _values(oid=org.org_id, oname=org.org_name, orole=org.role)
            update += ", org_id = :oid, org_name = :oname, org_role = :orole"
        return self._update_grant(
            grant_id, update, "#s = :pending AND expires_at > :now", values, {"#s": "status"}
        )

    def redeem_device_code(
        self,
        grant_id: str,
        *,
        device_code_digest: str,
        client_id: str,
        now: int,
        refresh_digest: str | None,
        family_expires_at: int,
        ttl: int,
        access_ttl: int,
        idle_timeout: int | None = None,
        rotation_grace: int | None = None,
    ) -> Grant:
        """approved -> issued, once: the refresh family starts at generation 1 (or, for a client
        without the refresh grant, there is no family: the session lasts as long as its access token).
        The grant becomes a session: it enters the session indexes, and keeps the client's policy."""
        update = (
            "SET #s = :issued, issued_at = :now, family_expires_at = :fexp, #ttl = :ttl, access_ttl = :attl,"
            " session_user = user_id, session_client = client_id,"
            " session_org = if_not_exists(org_id, :noorg), session_at = :now"
        )
        values = _values(
            issued="issued",
            approved="approved",
            now=now,
            fexp=family_expires_at,
            ttl=ttl,
            dcd=device_code_digest,
            cid=client_id,
            attl=access_ttl,
            noorg="-",
        )
        if rotation_grace is not None:
            update += ", rotation_grace = :grace"
            values |= _values(grace=rotation_grace)
        if refresh_digest is not None:
            update += ", rt_digest = :rtd, rt_generation = :one, rt_rotated_at = :now"
            values |= _values(rtd=refresh_digest, one=1)
            if idle_timeout:
                update += ", idle_timeout = :idle, idle_expires_at = :iexp"
                values |= _values(idle=idle_timeout, iexp=now + idle_timeout)
        return self._update_grant(
            grant_id,
            update,
            "device_code_digest = :dcd AND client_id = :cid AND #s = :approved AND expires_at > :now",
            values,
            {"#s": "status", "#ttl": "ttl"},
        )

    def record_poll(self, grant_id: str, now: int, previous: int | None) -> bool:
        """Accept a poll of a pending request; False when another poll was accepted meanwhile."""
        condition = "#s = :pending AND " + (
            "attribute_not_exists(last_poll_at)" if previous is None else "last_poll_at = :prev"
        )
        values = _values(pending="pending", now=now) | (
            _values(prev=previous) if previous is not None else {}
        )
        try:
            self._update_grant(grant_id, "SET last_poll_at = :now", condition, values, {"#s": "status"})
        except Rejected as rejected:  # accepted at this very second: this poll's own write, retried
            old = rejected.old
            return old is not None and old.status == "pending" and old.last_poll_at == now
        return True

    def slow_down(self, grant_id: str, old_interval: int, new_interval: int) -> int:
        """Grow the polling interval once per too-fast poll; the interval in force afterwards."""
        try:
            return self._update_grant(
                grant_id,
                "SET #i = :new",
                "#i = :old",
                _values(old=old_interval, new=new_interval),
                {"#i": "interval"},
            ).interval
        except Rejected as rejected:
            return max(new_interval, rejected.old.interval if rejected.old else new_interval)

    # ------------------------------------------------------------ refresh families

    def rotate_refresh(
        self,
        grant_id: str,
        *,
        presented_digest: str,
        generation: int,
        successor_digest: str,
        client_id: str,
        scopes: list[str],
        now: int,
        pinned_scope: str | None = None,
    ) -> Grant:
        """current -> previous, successor -> current, in one conditional write. Every reason to refuse
        is in the condition (the token is the current one, the family is live, not idle too long, and
        the client's, the asked scopes were granted): a refused rotation writes nothing, and ALL_OLD says
        why. The write itself records the use: ``rt_rotated_at`` (last used) and, for a family with an
        idle timeout, its new idle deadline."""
        condition = (
            "rt_digest = :d AND rt_generation = :g AND #s = :issued AND client_id = :cid"
            " AND attribute_not_exists(revoked_at) AND family_expires_at > :now"
            " AND (attribute_not_exists(idle_expires_at) OR idle_expires_at > :now)"
        )
        values = _values(
            d=presented_digest,
            g=generation,
            s=successor_digest,
            one=1,
            now=now,
            issued="issued",
            cid=client_id,
        )
        for i, scope in enumerate(dict.fromkeys(scopes)):
            condition += f" AND contains(scope_list, :sc{i})"
            values |= _values(**{f"sc{i}": scope})
        names = {"#s": "status"}
        if pinned_scope is not None:  # a grant written without scope_list: narrowed against this scope
            condition += " AND attribute_not_exists(scope_list) AND #scope = :pinned"
            values |= _values(pinned=pinned_scope)
            names["#scope"] = "scope"
        update = "SET rt_prev_digest = :d, rt_digest = :s, rt_generation = rt_generation + :one, rt_rotated_at = :now"
        # the grant's own idle timeout, moved on from now (a grant without one: a deadline that never
        # binds, the family's absolute lifetime ends it first)
        update += ", idle_expires_at = if_not_exists(idle_timeout, :never) + :now"
        values |= _values(never=NO_IDLE_TIMEOUT)
        return self._update_grant(grant_id, update, condition, values, names)

    def revoke_family(
        self,
        grant_id: str,
        now: int,
        reason: str,
        *,
        up_to_generation: int | None = None,
        client_id: str | None = None,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> Grant:
        """End a family (a session): it leaves the session indexes, and ``revoke_reason`` says who ended
        it (user, admin, reuse, logout). With ``up_to_generation``, only when the family has reached it
        (the presented, authentic, refresh token is the current one or an earlier one of this family);
        with ``user_id``/``org_id``/``client_id``, only when it is theirs."""
        condition = "#s = :issued AND attribute_not_exists(revoked_at)"
        values = _values(now=now, reason=reason, issued="issued")
        if user_id is not None:
            condition += " AND user_id = :uid"
            values |= _values(uid=user_id)
        if org_id is not None:
            condition += " AND org_id = :oid"
            values |= _values(oid=org_id)
        if up_to_generation is not None:
            condition += " AND rt_generation >= :g"
            values |= _values(g=up_to_generation)
        if client_id is not None:
            condition += " AND client_id = :cid"
            values |= _values(cid=client_id)
        return self._update_grant(
            grant_id,
            "SET revoked_at = :now, revoke_reason = :reason REMOVE session_user, session_org, session_client, session_at",
            condition,
            values,
            {"#s": "status"},
        )

    # ------------------------------------------------------------ sessions

    def session_ids(
        self, by: str, key: str, *, after: tuple[int, str] | None = None, limit: int | None = None
    ) -> tuple[list[str], tuple[int, str] | None]:
        """Grant ids of the sessions of a user, organization or client (``by``), newest first, one page,
        and where the next page starts (None: this was the last). ``after`` is (issued at, grant id) of
        the last one seen; the index's own key is rebuilt here, never taken from a caller."""
        index, attribute = SESSION_INDEXES[by]
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": f"{attribute} = :k",
            "ExpressionAttributeValues": _values(k=key),
            "ScanIndexForward": False,
            "Limit": limit or SESSIONS_PAGE,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = _to_ddb(
                {attribute: key, "session_at": after[0], "pk": f"GRANT#{after[1]}", "sk": "GRANT"}
            )
        page = self.client.query(**kwargs)
        ids = [str(_from_ddb(i)["pk"]).removeprefix("GRANT#") for i in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        if not last:
            return ids, None
        data = _from_ddb(last)
        return ids, (int(data["session_at"]), str(data["pk"]).removeprefix("GRANT#"))

    def get_grants(self, grant_ids: list[str]) -> list[Grant]:
        """Many grants in one call (BatchGetItem, at most 100), in the order asked; missing ones left out."""
        if not grant_ids:
            return []
        keys = [_to_ddb({"pk": f"GRANT#{g}", "sk": "GRANT"}) for g in dict.fromkeys(grant_ids)]
        found: dict[str, Grant] = {}
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        for _ in range(8):  # unprocessed keys (throttling): a few more tries, then what was read
            response = self.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table, []):
                grant = Grant.from_item(item)
                found[grant.grant_id] = grant
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        return [found[g] for g in grant_ids if g in found]

    # ------------------------------------------------------------ limits

    def reserve_verify_attempt(
        self, user_id: str, window: int, limit: int, ttl: int, request_id: str
    ) -> bool:
        """Take one of a user's code look-ups in a window: one conditional write decides, so concurrent
        guesses cannot all pass a check made before any of them counted. The window holds the ids of the
        look-ups it counted (a set, at most ``limit``): botocore retrying a write whose answer was lost
        finds its own id there and counts nothing twice. False: none left."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_to_ddb({"pk": f"RATE#verify#{user_id}", "sk": f"WINDOW#{window}"}),
                UpdateExpression="ADD attempt_ids :rid SET #ttl = :ttl",
                ConditionExpression=(
                    "attribute_not_exists(attempt_ids) OR size(attempt_ids) < :limit"
                    " OR contains(attempt_ids, :one)"
                ),
                ExpressionAttributeValues=_values(rid={request_id}, one=request_id, ttl=ttl, limit=limit),
                ExpressionAttributeNames={"#ttl": "ttl"},
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def release_verify_attempt(self, user_id: str, window: int, request_id: str) -> None:
        """Give back a look-up that found a live request: only wrong codes count against the limit. Taking
        an id out of the set is the same however often it is done."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_to_ddb({"pk": f"RATE#verify#{user_id}", "sk": f"WINDOW#{window}"}),
                UpdateExpression="DELETE attempt_ids :rid",
                ConditionExpression="attribute_exists(pk)",  # never makes a window of its own
                ExpressionAttributeValues=_values(rid={request_id}),
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    def verify_attempts(self, user_id: str, window: int) -> int:
        item = self._get(f"RATE#verify#{user_id}", f"WINDOW#{window}")
        return len(_from_ddb(item).get("attempt_ids") or ()) if item else 0
