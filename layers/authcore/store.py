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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Self, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_ser = TypeSerializer()
_de = TypeDeserializer()


def _to_ddb(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in item.items() if v is not None}


def _from_ddb(item: dict[str, Any]) -> dict[str, Any]:
    out = {k: _de.deserialize(v) for k, v in item.items()}
    return {k: (int(v) if type(v).__name__ == "Decimal" else v) for k, v in out.items()}


def _values(**values: Any) -> dict[str, Any]:
    return {f":{k}": _ser.serialize(v) for k, v in values.items()}


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass
class Record:
    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in _from_ddb(item).items() if k in names})


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
    ttl: int = 0


class Rejected(Exception):
    """A conditional write did not hold; ``old`` is the item as it was (None when there was none)."""

    def __init__(self, old: Grant | None) -> None:
        super().__init__("condition failed")
        self.old = old


class UserCodeTaken(Exception):
    """Another live device request holds this user code."""


class Store:
    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table = table_name

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

    def memberships(self, user_id: str) -> list[Membership]:
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :org)",
            ExpressionAttributeValues=_values(pk=f"USER#{user_id}", org="ORG#"),
            ConsistentRead=True,
        )
        return [Membership.from_item(i) for i in response.get("Items", [])]

    # ------------------------------------------------------------ device requests

    def create_device_grant(self, grant: Grant, now: int) -> None:
        """The grant and its user code, both or neither, in one call. The user code must be free
        (or held only by an expired request that DynamoDB has not collected yet)."""
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
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                    raise UserCodeTaken from None
            raise

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
    ) -> Grant:
        """approved -> issued, once: the refresh family starts at generation 1 (or, for a client
        without the refresh grant, there is no family: the session lasts as long as its access token)."""
        update = "SET #s = :issued, issued_at = :now, family_expires_at = :fexp, #ttl = :ttl"
        values = _values(
            issued="issued",
            approved="approved",
            now=now,
            fexp=family_expires_at,
            ttl=ttl,
            dcd=device_code_digest,
            cid=client_id,
        )
        if refresh_digest is not None:
            update += ", rt_digest = :rtd, rt_generation = :one, rt_rotated_at = :now"
            values |= _values(rtd=refresh_digest, one=1)
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
        is in the condition (the token is the current one, the family is live and the client's, the
        asked scopes were granted): a refused rotation writes nothing, and ALL_OLD says why."""
        condition = (
            "rt_digest = :d AND rt_generation = :g AND #s = :issued AND client_id = :cid"
            " AND attribute_not_exists(revoked_at) AND family_expires_at > :now"
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
        return self._update_grant(
            grant_id,
            "SET rt_prev_digest = :d, rt_digest = :s, rt_generation = rt_generation + :one, rt_rotated_at = :now",
            condition,
            values,
            names,
        )

    def revoke_family(
        self,
        grant_id: str,
        now: int,
        reason: str,
        *,
        up_to_generation: int | None = None,
        client_id: str | None = None,
    ) -> Grant:
        """End a family. With ``up_to_generation``, only when the family has reached it (the presented,
        authentic, refresh token is the current one or an earlier one of this family)."""
        condition = "#s = :issued AND attribute_not_exists(revoked_at)"
        values = _values(now=now, reason=reason, issued="issued")
        if up_to_generation is not None:
            condition += " AND rt_generation >= :g"
            values |= _values(g=up_to_generation)
        if client_id is not None:
            condition += " AND client_id = :cid"
            values |= _values(cid=client_id)
        return self._update_grant(
            grant_id, "SET revoked_at = :now, revoke_reason = :reason", condition, values, {"#s": "status"}
        )

    # ------------------------------------------------------------ limits

    def reserve_verify_attempt(self, user_id: str, window: int, limit: int, ttl: int) -> bool:
        """Take one of a user's code look-ups in a window: one conditional increment decides, so
        concurrent guesses cannot all pass a check made before any of them counted. False: none left."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_to_ddb({"pk": f"RATE#verify#{user_id}", "sk": f"WINDOW#{window}"}),
                UpdateExpression="ADD attempts :one SET #ttl = :ttl",
                ConditionExpression="attribute_not_exists(attempts) OR attempts < :limit",
                ExpressionAttributeValues=_values(one=1, ttl=ttl, limit=limit),
                ExpressionAttributeNames={"#ttl": "ttl"},
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def release_verify_attempt(self, user_id: str, window: int) -> None:
        """Give back a look-up that found a live request: only wrong codes count against the limit."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_to_ddb({"pk": f"RATE#verify#{user_id}", "sk": f"WINDOW#{window}"}),
                UpdateExpression="ADD attempts :minus",
                ConditionExpression="attempts > :zero",
                ExpressionAttributeValues=_values(minus=-1, zero=0),
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise

    def verify_attempts(self, user_id: str, window: int) -> int:
        item = self._get(f"RATE#verify#{user_id}", f"WINDOW#{window}")
        return int(_from_ddb(item)["attempts"]) if item else 0
