"""A model of the whole token lifecycle, and a hypothesis state machine that drives the real handlers with
it (tests/integration/test_model.py runs it; `make soak` runs it long).

The machine starts device authorizations, approves and denies them, polls and exchanges device codes on
both routes, refreshes (body, cookie, token endpoint, with and without a narrowing scope), revokes, logs
out, introspects, presents forged tokens, moves the service's clock, and injects AWS faults at the boto3
boundary. The model (plain Python objects) says what must be true; every answer is compared with what the
model predicts, and after every step the table, read outside our store code, is compared with the model:

- one device code, one family: every successful exchange of a code returned the same refresh token, and
  no grant is `issued` that the client did not receive tokens for (a lost answer included);
- a family has exactly one current refresh token, and only it is active (introspection, which has no side
  effect); a revoked family stays revoked, its `revoked_at` never rewritten;
- a refused request changes no item, except the side effects listed in `REFUSAL_MAY_WRITE`;
- nothing secret at rest: no device code, refresh token (nor its base64 body), access token, client
  secret or user code in display form appears anywhere in the table;
- every request costs at most `HMAC_BOUND` HMACs, the same at every generation, and the DynamoDB budget:
  a refresh is one UpdateItem (two when it detects reuse), an exchange one, a forged token none.

A fault (`aws.inject`) must be answered in the dialect's dependency error (never 500, never a traceback)
and leave the table as it was, except the wrong-code counter; a lost answer (`aws.lose_answers`, a write
applied whose answer is lost, then retried by botocore) must end exactly as if nothing had gone wrong.

The table is read through moto's in-memory backend after every request (a boto3 scan costs ~2 ms per item
in moto's response serializer, too slow for thousands of steps); `check_against_scan` proves the two agree,
with a raw boto3 scan, at the start and the end of every example.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac as stdlib_hmac
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import jwt
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from authcore import clock as service_clock
from authcore import runtime, tokens
from local.lambda_host import HttpResult
from tests.conftest import GRACE, ORIGIN, SECRET, TABLE, Api
from tests.support import aws
from tests.support.forge import forged_refresh_token

# ---------------------------------------------------------------- the contract's numbers (defaults)

START = 1_800_000_000  # every example starts at the same instant, on the service's (manual) clock
DEVICE_TTL = 900
POLL_INTERVAL = 5
SLOW_DOWN_STEP = 5
SLOW_DOWN_CEILING = 60
POLL_JITTER = 1
ACCESS_TTL = 3600
FAMILY_TTL = 30 * 86400
VERIFY_LIMIT = 10
VERIFY_WINDOW = 900
# the per-address limit of device authorization requests (tests/integration/test_model.py sets these, low,
# so that the model reaches it); every request of the model comes from one address
DEVICE_LIMIT = 8
DEVICE_WINDOW = 600
SOURCE_IP = "127.0.0.1"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"

HMAC_BOUND = 6
"""The most HMACs one request may cost (measured, and it is the sum of the parts: a confidential client's
rotation = its secret's digest 1 + the presented token's tag 1 + its digest 1 + the successor's nonce and
tag 2 + the successor's digest 1). Constant: nothing a client controls, such as the family's generation,
may make it grow. On top of it, once per key set, each purpose key is derived from the master key once."""
PURPOSE_KEYS = 4  # digest, refresh-tag, refresh-first, rotate

ACTIONS = (  # (action, weight): one step of the machine is one of these
    ("refresh", 6),
    ("sign_in", 2),
    ("revoke", 2),
    ("exchange", 2),
    ("decide", 2),
    ("start", 2),
    ("time_passes", 2),
    ("introspect", 1),
    ("forged", 1),
    ("rotate_many", 1),
)
CLIENT_SCOPES = {"demo-cli": ["read", "write"], "backend": ["read", "write", "admin"]}
USERS = {  # name -> (claims attribute of aws.Seed, organization id -> (name, role))
    "ada": ("user", {"acme": ("Acme Corp", "admin")}),
    "grace": ("multi_user", {"acme": ("Acme Corp", "member"), "globex": ("Globex", "owner")}),
    "nobody": ("lonely_user", {}),
}

# kind -> (OAuth status, OAuth error, product status, product type): docs/api.md's tables
SPOKEN = {
    "invalid_grant": (400, "invalid_grant", 401, "invalid_grant"),
    "invalid_scope": (400, "invalid_scope", 403, "access_denied"),
    "invalid_client": (401, "invalid_client", 401, "invalid_client"),
    "unauthorized_client": (400, "unauthorized_client", 403, "access_denied"),
    "authorization_pending": (400, "authorization_pending", 400, "authorization_pending"),
    "slow_down": (400, "slow_down", 429, "slow_down"),
    "access_denied": (400, "access_denied", 403, "access_denied"),
    "expired_token": (400, "expired_token", 400, "expired_token"),
    "not_found": (404, "invalid_request", 404, "not_found"),
    "already_exists": (400, "invalid_request", 409, "already_exists"),
    "validation_error": (400, "invalid_request", 422, "validation_error"),
    "rate_limited": (503, "temporarily_unavailable", 429, "rate_limited"),
    "too_many_requests": (429, "temporarily_unavailable", 429, "rate_limited"),
}
# an injected DynamoDB fault -> ((OAuth status, error), (product status, type))
FAULT_ANSWERS = {
    "throttle": ((503, "temporarily_unavailable"), (429, "rate_limited")),
    "error": ((503, "temporarily_unavailable"), (502, "bad_gateway")),
    "timeout": ((503, "temporarily_unavailable"), (504, "gateway_timeout")),
}

SESSION_KEYS = {"session_user", "session_org", "session_client", "session_at"}  # the sparse indexes' keys
ENDED = {"revoked_at", "revoke_reason", *SESSION_KEYS}  # what ending a session changes
REFUSAL_MAY_WRITE: dict[str, set[str] | None] = {
    # a pending poll is recorded (authorization_pending: last_poll_at; slow_down: interval), and reuse ends
    # the family (revoked_at, revoke_reason; it leaves the session indexes)
    "GRANT#": {"last_poll_at", "interval", "revoked_at", "revoke_reason", *SESSION_KEYS},
    # the wrong-code counter: a look-up takes an attempt, a right code gives it back (any attribute)
    "RATE#verify#": None,
}
"""The only writes a request answered with an error (4xx, or a fault's 5xx) may make: item key prefix ->
attributes. Each predicted refusal (`Expect.changes`) allows a part of this, for its own item only."""


# ---------------------------------------------------------------- instruments


class HmacSpy:
    """Stands in for the stdlib `hmac` module as `authcore.tokens` sees it (``tokens.hmac``): counts
    `new` and `digest` (each one HMAC), delegates everything. An instrument: the HMACs computed are exactly the stdlib's."""

    def __init__(self, master: bytes) -> None:
        self.master = master
        self.count = 0
        self.derived = 0  # of which derived a purpose key from the master key (once per key set)

    def new(self, key: bytes, msg: bytes | None = None, digestmod: Any = None) -> Any:
        self.count += 1
        self.derived += key == self.master
        return stdlib_hmac.new(key, msg, digestmod)

    def digest(self, key: bytes, msg: bytes, digest: Any) -> bytes:
        """The one-shot HMAC (what authcore.tokens computes with), counted as `new` is."""
        self.count += 1
        self.derived += key == self.master
        return stdlib_hmac.digest(key, msg, digest)

    def reset(self) -> None:
        self.count = self.derived = 0

    @property
    def per_request(self) -> int:
        """The HMACs a request costs once its key set's purpose keys are derived."""
        return self.count - self.derived

    compare_digest = staticmethod(stdlib_hmac.compare_digest)

    def __getattr__(self, name: str) -> Any:
        return getattr(stdlib_hmac, name)


@dataclass
class Stats:
    examples: int = 0
    steps: int = 0
    requests: int = 0
    faults_injected: int = 0
    faults_answered: int = 0  # the faulted operation was reached and the answer was the dependency error
    answers_lost: int = 0  # writes applied out of band whose call then ran as a retry
    invariants: int = 0
    scans: int = 0
    max_hmacs: int = 0
    max_generation: int = 0
    rotation_costs: dict[str, dict[int, int]] = field(default_factory=dict)  # client -> generation -> HMACs
    rules: dict[str, int] = field(default_factory=dict)  # action -> steps
    outcomes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"model: {self.examples} examples, {self.steps} steps, {self.requests} requests, "
            f"{self.faults_injected} faults injected ({self.faults_answered} answered as dependency "
            f"errors, {self.answers_lost} answers lost and retried), {self.invariants} invariants checked, "
            f"{self.scans} boto3 scans, at most {self.max_hmacs} HMACs a request (and each purpose key "
            f"derived once), generations up to {self.max_generation}\n"
            f"model: actions: {', '.join(f'{k}={v}' for k, v in sorted(self.rules.items()))}\n"
            f"model: outcomes: {', '.join(f'{k}={v}' for k, v in sorted(self.outcomes.items()))}"
        )


STATS = Stats()


@dataclass(frozen=True)
class Fault:
    mode: str  # "inject": the operation fails; "lose": the write is applied, its answer lost, retried
    op: str
    kind: str = ""  # inject: throttle | error | timeout
    times: int = 1  # lose: how many calls of `op`

    def __repr__(self) -> str:
        what = self.kind if self.mode == "inject" else f"lose x{self.times}"
        return f"Fault({what} {self.op})"


FAULTS = st.one_of(
    st.builds(
        Fault,
        st.just("inject"),
        st.sampled_from(["UpdateItem", "GetItem", "TransactWriteItems", "Query"]),
        st.sampled_from(["throttle", "error", "timeout"]),
    ),
    st.builds(Fault, st.just("lose"), st.sampled_from(["UpdateItem", "TransactWriteItems"]), st.just(""),
              st.integers(1, 3)),
)  # fmt: skip
MAYBE_FAULT = st.integers(0, 11).flatmap(lambda n: st.none() if n < 8 else FAULTS)


class Attempted:
    """Every DynamoDB operation a request attempts, faulted ones included (registered in front of the
    fault hook, which answers in place of DynamoDB)."""

    def __init__(self) -> None:
        self.ops: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.ops.append(model.name)


# ---------------------------------------------------------------- reading the table

Item = dict[str, Any]
Snapshot = dict[tuple[str, str], Item]


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def fast_snapshot() -> Snapshot:
    """Every item, straight from moto's memory (no serializer, none of our code)."""
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][aws.REGION].get_table(TABLE)
    items = [item.to_json()["Attributes"] for by_range in table.items.values() for item in by_range.values()]
    return {(attrs["pk"]["S"], attrs["sk"]["S"]): attrs for attrs in _plain(items)}


def boto3_scan() -> Snapshot:
    """Every item, by a raw boto3 scan (consistent, paginated)."""
    ddb = boto3.client("dynamodb", region_name=aws.REGION)
    out: Snapshot = {}
    kwargs: dict[str, Any] = {"TableName": TABLE, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        for item in page["Items"]:
            attrs = _plain(item)
            out[(attrs["pk"]["S"], attrs["sk"]["S"])] = attrs
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def counted(item: Item) -> int:
    """The look-ups a wrong-code window counts: the ids in its set (none: the attribute goes with them)."""
    return len(item.get("attempt_ids", {}).get("SS", []))


def value(item: Item | None, name: str) -> Any:
    """A plain value of a DynamoDB-JSON attribute (numbers as int), or None."""
    if item is None or name not in item:
        return None
    (kind, raw), *_ = item[name].items()
    if kind == "N":
        return int(raw)
    if kind == "L":
        return [value({"v": v}, "v") for v in raw]
    return raw


def diff(before: Snapshot, after: Snapshot) -> dict[str, set[str]]:
    """pk -> the attributes that changed (``{"*new*"}`` for a new item, ``{"*gone*"}`` for a deleted one)."""
    out: dict[str, set[str]] = {}
    for key in before.keys() | after.keys():
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        if a is None:
            out[key[0]] = {"*new*"}
        elif b is None:
            out[key[0]] = {"*gone*"}
        else:
            out[key[0]] = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    return out


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hmac_master() -> bytes:
    """The key set's HMAC key, read from Secrets Manager."""
    raw = boto3.client("secretsmanager", region_name=aws.REGION).get_secret_value(
        SecretId=SECRET, VersionStage="AWSCURRENT"
    )["SecretString"]
    text = json.loads(raw)["hmac_key"]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Digests:
    """The keyed digest the table must hold in place of a secret, computed here with the stdlib from the
    key set's HMAC key (the documented derivation: HMAC(HMAC(key, "digest"), secret)), not by tokens.py."""

    def __init__(self) -> None:
        self._key = stdlib_hmac.new(hmac_master(), b"digest", hashlib.sha256).digest()

    def __call__(self, secret: str) -> str:
        return b64url(stdlib_hmac.new(self._key, secret.encode(), hashlib.sha256).digest())


# ---------------------------------------------------------------- the model


@dataclass
class Access:
    token: str
    exp: int


@dataclass
class Family:
    tokens: list[str]  # tokens[g - 1] is generation g; the last one is current
    rotated_at: int
    expires_at: int
    revoked: bool = False
    revoked_at: int | None = None  # as first seen in the table: never rewritten

    @property
    def generation(self) -> int:
        return len(self.tokens)

    @property
    def current(self) -> str:
        return self.tokens[-1]


@dataclass
class Login:
    n: int
    client: str
    device_code: str
    user_code: str  # display form
    grant_id: str
    scope: list[str]
    created_at: int
    expires_at: int
    status: str = "pending"
    interval: int = POLL_INTERVAL
    last_poll_at: int | None = None
    user: str | None = None
    org: str | None = None
    decided_at: int | None = None
    issued_at: int | None = None
    family: Family | None = None
    access: list[Access] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Login#{self.n}({self.client}, {self.status})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis prints a draw
        printer.text(repr(self))


@dataclass
class Expect:
    """What the model predicts for one request: ``kind`` "ok" or a refusal kind (SPOKEN); ``changes``:
    pk -> the attributes the request may change (None: any, or the item's creation); ``budget``: the
    exact DynamoDB calls when no fault is injected (None: not checked); ``apply``: the model's update,
    given the answer, when the answer is the predicted one."""

    kind: str
    changes: dict[str, set[str] | None] = field(default_factory=dict)
    budget: list[str] | None = None
    apply: Callable[[HttpResult], None] | None = None
    interval: int | None = None  # slow_down: the interval the answer must carry
    new_items: int = 0  # items the request creates (device authorization: the grant and its user code)
    label: str = ""  # what the outcome is called in the summary's coverage counts
    if_lost: Expect | None = None
    """A known deviation (its label names it; a strict xfail in test_model.py reproduces it): what the
    request answers instead when one of its writes was applied and its answer lost. Accepted only then."""


@dataclass
class World:
    """What the test hands the machine: the seed, the instruments, and where output goes."""

    seed: aws.Seed
    spy: HmacSpy
    logs: Any  # tests.conftest.LogCapture
    drain: Callable[[], object]  # forget captured output (a long soak must not hold it all)


def grant_pk(login: Login) -> str:
    return f"GRANT#{login.grant_id}"


def dialect(path: str) -> str:
    return (
        "oauth" if path.startswith("/oauth/") and not path.startswith("/oauth/device/verify") else "product"
    )


class LifecycleMachine(RuleBasedStateMachine):
    world: World  # set by the test (a subclass per run)

    def __init__(self) -> None:
        super().__init__()
        self.api = Api()
        self.seed = self.world.seed
        self.secret = self.seed.confidential_secret
        self.clear_table()
        self.clock = service_clock.Manual(START)
        service_clock.use(self.clock)
        self.digest = Digests()
        self.logins: list[Login] = []
        self.attempts: dict[tuple[str, int], int] = {}  # (user id, window start) -> wrong codes
        self.device_requests: dict[int, int] = {}  # window start -> device authorizations from SOURCE_IP
        self.orphans: set[str] = set()  # grants created by a lost device authorization nobody received
        self.secrets: set[str] = {self.secret}
        self.touched: list[Login] = []
        self.steps = 0
        self.log_seen = 0
        self.table = fast_snapshot()
        self.check_against_scan()
        STATS.examples += 1

    # ------------------------------------------------------------ plumbing

    @staticmethod
    def clear_table() -> None:
        """Each example starts from the seed alone: every grant, user code and counter goes."""
        ddb = boto3.client("dynamodb", region_name=aws.REGION)
        keys: list[dict[str, Any]] = [
            {"pk": item["pk"], "sk": item["sk"]}
            for item in fast_snapshot().values()
            if item["pk"]["S"].startswith(("GRANT#", "USERCODE#", "RATE#"))
        ]
        for i in range(0, len(keys), 25):
            batch: list[Any] = [{"DeleteRequest": {"Key": k}} for k in keys[i : i + 25]]
            ddb.batch_write_item(RequestItems={TABLE: batch})

    def check_against_scan(self) -> None:
        scanned = boto3_scan()
        STATS.scans += 1
        assert scanned == fast_snapshot(), "moto's memory and a boto3 scan disagree"
        self.no_secret_in(scanned)

    @property
    def now(self) -> int:
        return int(self.clock())

    def creds(self, client: str, *, basic: bool) -> tuple[dict[str, str], dict[str, str]]:
        """(form fields, headers) that authenticate a client."""
        if client == "demo-cli":
            return {"client_id": "demo-cli"}, {}
        if basic:
            raw = base64.b64encode(f"backend:{self.secret}".encode()).decode()
            return {}, {"authorization": f"Basic {raw}"}
        return {"client_id": "backend", "client_secret": self.secret}, {}

    def basic(self, client: str) -> dict[str, str]:
        return self.creds(client, basic=True)[1]

    def signed_in(self, user: str) -> dict[str, Any]:
        """The person's claims, for an ID token that is valid on the service's clock."""
        return {**getattr(self.seed, USERS[user][0]), "iat": self.now, "exp": self.now + 3600}

    def families(self, alive: bool = False) -> list[Login]:
        return [
            login
            for login in self.logins
            if login.family is not None
            and (not alive or (not login.family.revoked and login.family.expires_at > self.now))
        ]

    def remember(self, *secrets: str | None) -> None:
        for s in secrets:
            if s:
                self.secrets.add(s)

    def remember_refresh(self, token: str) -> None:
        self.remember(token, token.removeprefix("rt_"))

    def remember_access(self, login: Login, token: str) -> None:
        self.remember(token, token.rsplit(".", 1)[-1])
        claims = jwt.decode(token, options={"verify_signature": False})
        login.access.append(Access(token, int(claims["exp"])))

    # ------------------------------------------------------------ one request

    def send(
        self, method: str, path: str, expect: Expect, fault: Fault | None = None, **kwargs: Any
    ) -> HttpResult | None:
        """Send one request and judge it against ``expect``; None when it was answered as a fault."""
        before = self.table  # as the last request left it (`table_agrees_with_the_model` checks)
        attempted = Attempted()
        lost: aws.LostAnswers | None = None
        self.world.spy.reset()
        with contextlib.ExitStack() as stack:
            calls = stack.enter_context(aws.count_dynamodb())
            events = runtime.store().client.meta.events
            events.register_first("before-call.dynamodb", attempted)  # in front of the fault's hook
            stack.callback(events.unregister, "before-call.dynamodb", attempted)
            if fault is not None and fault.mode == "inject":
                stack.enter_context(aws.inject(fault.kind, "dynamodb", fault.op))
            elif fault is not None:
                lost = stack.enter_context(aws.lose_answers(fault.op, fault.times))
            result = self.api.call(method, path, **kwargs)
        hmacs = self.world.spy.count
        after = fast_snapshot()
        self.table = after
        STATS.requests += 1
        STATS.faults_injected += fault is not None
        where = f"{method} {path} -> {result.status} {result.text[:300]}"

        # never a 500, never a traceback, always JSON
        assert result.status != 500 and result.status < 600, where
        assert "Traceback" not in result.text and 'File "' not in result.text, where
        body = result.json()
        spy = self.world.spy
        assert spy.per_request <= HMAC_BOUND and spy.derived <= PURPOSE_KEYS, f"{hmacs} HMACs: {where}"
        STATS.max_hmacs = max(STATS.max_hmacs, spy.per_request)
        changed = diff(before, after)
        spoken = dialect(path)

        if fault is not None and fault.mode == "inject" and fault.op in attempted.ops:
            (o_status, o_error), (p_status, p_type) = FAULT_ANSWERS[fault.kind]
            if spoken == "oauth":
                assert (result.status, body.get("error")) == (o_status, o_error), where
            else:
                assert (result.status, body.get("type"), body.get("status")) == (p_status, p_type, p_status)
            assert int(result.headers.get("retry-after", "0")) >= 1, where
            self.refusal_writes_only_what_it_may(changed, where)
            self.assert_changes(changed, {k: v for k, v in expect.changes.items() if k.startswith("RATE#")})
            STATS.faults_answered += 1
            self.resync_attempts()
            return None
        if lost is not None and lost.lost:
            STATS.answers_lost += 1
            if expect.if_lost is not None and self.answered(result, expect.if_lost, spoken):
                expect = expect.if_lost

        if expect.kind == "ok":
            assert result.status == 200, f"expected success: {where}"
        else:
            o_status, o_error, p_status, p_type = SPOKEN[expect.kind]
            if spoken == "oauth":
                assert (result.status, body.get("error")) == (o_status, o_error), (
                    f"expected {expect.kind}: {where}"
                )
            else:
                assert (result.status, body.get("type"), body.get("status")) == (
                    p_status,
                    p_type,
                    p_status,
                ), f"expected {expect.kind}: {where}"
            if result.status in (429, 503):
                assert int(result.headers.get("retry-after", "0")) >= 1, where
            if expect.interval is not None:
                if spoken == "oauth":
                    assert body.get("interval") == expect.interval, where
                else:
                    assert result.headers.get("retry-after") == str(expect.interval), where

        if result.status >= 400:
            self.refusal_writes_only_what_it_may(changed, where)
        allowed = dict(expect.changes)
        if fault is not None and fault.mode == "lose" and fault.op == "TransactWriteItems":
            allowed["*orphans*"] = None  # a lost device authorization leaves a request nobody received
        new = self.assert_changes(changed, allowed)
        if fault is None and expect.budget is not None:
            assert calls.calls == expect.budget, f"DynamoDB calls {calls.calls} != {expect.budget}: {where}"
        if expect.apply is not None:
            expect.apply(result)
        if expect.label:
            lost_one = lost is not None and lost.lost > 0
            for name in (expect.label, f"{expect.label}(answer lost)") if lost_one else (expect.label,):
                STATS.outcomes[name] = STATS.outcomes.get(name, 0) + 1
        for login in self.logins:  # a family this request changed is read back (introspection) after the step
            if grant_pk(login) in changed and login.family is not None and login not in self.touched:
                self.touched.append(login)
        if fault is not None and fault.mode == "lose" and fault.op == "TransactWriteItems":
            known = {grant_pk(x) for x in self.logins} | {
                f"USERCODE#{x.user_code.replace('-', '')}" for x in self.logins
            }
            self.orphans |= {pk for pk in new if pk not in known}
        else:
            assert len(new) == expect.new_items, f"new items {sorted(new)}: {where}"
        if fault is not None:
            self.resync_attempts()
        return result

    @staticmethod
    def answered(result: HttpResult, expect: Expect, spoken: str) -> bool:
        if expect.kind == "ok":
            return result.status == 200
        o_status, o_error, p_status, p_type = SPOKEN[expect.kind]
        if spoken == "oauth":
            return (result.status, result.json().get("error")) == (o_status, o_error)
        return (result.status, result.json().get("type")) == (p_status, p_type)

    @staticmethod
    def refusal_writes_only_what_it_may(changed: dict[str, set[str]], where: str) -> None:
        for pk, attrs in changed.items():
            prefix = next((p for p in REFUSAL_MAY_WRITE if pk.startswith(p)), None)
            assert prefix is not None, f"a refused request changed {pk}: {where}"
            spec = REFUSAL_MAY_WRITE[prefix]
            assert spec is None or attrs <= spec, f"a refused request changed {pk} {sorted(attrs)}: {where}"

    def assert_changes(self, changed: dict[str, set[str]], allowed: dict[str, set[str] | None]) -> set[str]:
        """Every change is allowed; the new items' keys."""
        new = set()
        for pk, attrs in changed.items():
            if attrs == {"*new*"} and not pk.startswith("RATE#"):
                new.add(pk)
            if pk in allowed:
                spec = allowed[pk]
                assert spec is None or attrs <= spec, (
                    f"{pk}: {sorted(attrs)} changed, only {sorted(spec)} may"
                )
                continue
            if "*new*" in allowed and attrs == {"*new*"}:
                continue
            if "*orphans*" in allowed and attrs == {"*new*"} and pk.startswith(("GRANT#", "USERCODE#")):
                continue
            raise AssertionError(f"{pk}: {sorted(attrs)} changed, and nothing allowed it")
        return new

    def resync_attempts(self) -> None:
        """After a fault the wrong-code counter may have taken an attempt it did not give back (a
        look-up counted before the fault): take the table's word for it (the only such side effect)."""
        for (pk, sk), item in self.table.items():
            if pk.startswith("RATE#verify#"):
                self.attempts[(pk.removeprefix("RATE#verify#"), int(sk.removeprefix("WINDOW#")))] = counted(
                    item
                )

    # ------------------------------------------------------------ answers

    def check_issued(
        self, login: Login, result: HttpResult, *, refresh: str | None, scope: list[str], route: str
    ) -> str:
        """An answer that issues tokens: the same shape on every route; the refresh token it carries."""
        body = result.json()
        assert body["token_type"].lower() == "bearer" and body["expires_in"] == ACCESS_TTL, body
        assert body["scope"] == " ".join(scope), (body["scope"], scope)
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["sid"] == login.grant_id and claims["client_id"] == login.client, claims
        assert claims["scope"] == " ".join(scope) and claims["iat"] == self.now, claims
        assert claims["exp"] == self.now + ACCESS_TTL, claims
        user_claims = getattr(self.seed, USERS[login.user or "ada"][0])
        assert claims["sub"] == user_claims["sub"] and claims["org_id"] == login.org, claims
        if route in ("product", "cookie"):
            assert body["user"]["id"] == user_claims["sub"], body
            assert body["organization"]["id"] == login.org, body
            name, role = USERS[login.user or "ada"][1][login.org or ""]
            assert (body["organization"]["name"], body["organization"]["role"]) == (name, role), body
        if route == "cookie":
            assert "refresh_token" not in body, "a cookie refresh answers the token in Set-Cookie only"
            (cookie,) = result.cookies
            parts = [p.strip() for p in cookie.split(";")]
            name, _, presented = parts[0].partition("=")
            attrs = {p.split("=", 1)[0].lower(): p.partition("=")[2] for p in parts[1:]}
            assert name == "refresh_token" and attrs["path"] == "/auth", cookie
            assert {"httponly", "secure"} <= attrs.keys() and attrs["samesite"].lower() == "strict", cookie
            assert login.family is not None
            assert int(attrs["max-age"]) == login.family.expires_at - self.now, cookie
            token = presented
        else:
            token = body.get("refresh_token")
        assert token is not None
        if refresh is not None:
            assert token == refresh, "a re-sent request must get the same refresh token"
        parsed = tokens.parse_refresh_token(token)
        assert parsed is not None and parsed.grant_id == login.grant_id and parsed.client_id == login.client
        self.remember_refresh(token)
        self.remember_access(login, body["access_token"])
        return token

    # ------------------------------------------------------------ actions: device authorization

    def sign_in(self, data: st.DataObject) -> None:
        """A whole device flow in one step (start, approve, exchange on either route, maybe sent again),
        so that families are common; the steps one by one, interleaved with everything else, are below."""
        client = data.draw(st.sampled_from(["demo-cli", "backend"]), label="client")
        scope = data.draw(st.sampled_from([None, "read", "read write"]), label="scope")
        self.start_with(client, scope, basic=False, fault=None)
        login = self.logins[-1] if self.logins and self.logins[-1].created_at == self.now else None
        if login is None or login.status != "pending":
            return
        user = data.draw(st.sampled_from(["ada", "grace"]), label="user")
        org = "acme" if user == "ada" else data.draw(st.sampled_from(["acme", "globex"]), label="org")
        decision = data.draw(st.sampled_from(["approve", "approve", "approve", "deny"]), label="decision")
        self.send("POST", "/oauth/device/verify", self.decide_expect(user, login, decision, org),
                  body={"user_code": login.user_code, "decision": decision, "organization_id": org},
                  claims=self.signed_in(user))  # fmt: skip
        route = data.draw(st.sampled_from(["oauth", "product"]), label="route")
        fault = data.draw(MAYBE_FAULT, label="fault")
        self.exchange_with(login, login.client, route, False, fault)
        again = data.draw(st.sampled_from([None, None, "oauth", "product"]), label="sent again")
        if again is not None:  # the device did not get the answer, and sends the exchange again
            self.exchange_with(login, login.client, again, False, None)

    def start(self, data: st.DataObject) -> None:
        """A device authorization request, by either client, with or without a scope (one it may not have)."""
        client = data.draw(st.sampled_from(["demo-cli", "backend"]), label="client")
        scope = data.draw(st.sampled_from([None, None, "read", "write", "read write", "admin", "write read write"]),
                          label="scope")  # fmt: skip
        basic = data.draw(st.booleans(), label="basic")
        self.start_with(client, scope, basic=basic, fault=data.draw(MAYBE_FAULT, label="fault"))

    def start_with(self, client: str, scope: str | None, *, basic: bool, fault: Fault | None) -> None:
        form, headers = self.creds(client, basic=basic)
        if scope is not None:
            form["scope"] = scope
        allowed = CLIENT_SCOPES[client]
        asked = list(dict.fromkeys(scope.split())) if scope else list(allowed)
        if any(s not in allowed for s in asked):
            self.send("POST", "/oauth/device/code", Expect("invalid_scope", budget=[]), fault, form=form,
                      headers=headers)  # fmt: skip
            return
        now = self.now
        window = now - now % DEVICE_WINDOW
        if self.device_requests.get(window, 0) >= DEVICE_LIMIT:
            expect = Expect("too_many_requests", budget=["TransactWriteItems"], label="device_rate_limited")
            self.send("POST", "/oauth/device/code", expect, fault, form=form, headers=headers)
            return

        def apply(result: HttpResult) -> None:
            self.device_requests[window] = self.device_requests.get(window, 0) + 1
            body = result.json()
            code = body["device_code"]
            grant_id = tokens.grant_id_of(code, "dc")
            assert grant_id is not None, "device code of the documented shape"
            assert body["expires_in"] == DEVICE_TTL and body["interval"] == POLL_INTERVAL, body
            shown = body["user_code"]
            assert len(shown) == 9 and shown[4] == "-", shown
            assert all(c in USER_CODE_ALPHABET for c in shown.replace("-", "")), shown
            assert body["verification_uri_complete"].endswith(f"?user_code={shown}"), body
            login = Login(len(self.logins), client, code, shown, grant_id, asked, now, now + DEVICE_TTL)
            self.logins.append(login)
            self.remember(code, code[-43:], shown)  # the code, its random part, the user code as shown

        counter = f"RATE#device#{SOURCE_IP}"
        expect = Expect(
            "ok",
            {"*new*": None, counter: None},
            ["TransactWriteItems"],
            apply,
            new_items=2,
            label="started",
        )
        self.send("POST", "/oauth/device/code", expect, fault, form=form, headers=headers)

    def decide_expect(self, user: str, login: Login | None, decision: str, org: str | None) -> Expect:
        # A reservation whose answer was lost and retried finds its own look-up's id in the window's set:
        # it counts once (there was a known deviation here: a plain ADD counted it twice).
        return self.decision_expect(user, login, decision, org)

    def decision_expect(self, user: str, login: Login | None, decision: str, org: str | None) -> Expect:
        """POST /oauth/device/verify, in the order the contract implies: standing, the attempt limit,
        the code, the organization, the request's state."""
        sub = getattr(self.seed, USERS[user][0])["sub"]
        memberships = USERS[user][1]
        if not memberships:
            return Expect("access_denied", budget=["Query"], label="no_membership")
        window = self.now - self.now % VERIFY_WINDOW
        key = (sub, window)
        rate: dict[str, set[str] | None] = {f"RATE#verify#{sub}": None}
        if self.attempts.get(key, 0) >= VERIFY_LIMIT:
            return Expect("rate_limited", rate, label="verify_rate_limited")
        if login is None or self.now >= login.expires_at:

            def wrong(_: HttpResult) -> None:
                self.attempts[key] = self.attempts.get(key, 0) + 1

            return Expect("not_found", rate, apply=wrong, label="verify_not_found")
        chosen = None
        if decision == "approve":
            if org is not None and org not in memberships:
                return Expect("access_denied", rate)
            if org is None and len(memberships) > 1:
                return Expect("validation_error", rate)
            chosen = org or next(iter(memberships))
        answer = {"status": "approved" if decision == "approve" else "denied"}
        if login.status != "pending":  # the same person's same decision again gets the same answer
            if (login.status, login.user, login.org) != (answer["status"], user, chosen):
                return Expect("already_exists", rate, label="already_decided")
            return Expect(
                "ok", rate, apply=lambda result: self.answered_with(result, answer), label="decided_again"
            )
        now = self.now

        def decided(result: HttpResult) -> None:
            self.answered_with(result, answer)
            login.status = answer["status"]
            login.user, login.org, login.decided_at = user, chosen, now

        fields = {
            "status",
            "decided_at",
            "user_id",
            "user_email",
            "user_name",
            "org_id",
            "org_name",
            "org_role",
        }
        return Expect("ok", {**rate, grant_pk(login): fields}, apply=decided, label=answer["status"])

    @staticmethod
    def answered_with(result: HttpResult, body: dict[str, Any]) -> None:
        assert result.json() == body, result.text

    def decide(self, data: st.DataObject) -> None:
        """A person approves or denies a device request by its user code (in any spelling), or types a
        code that is no request's (None), up to a dozen times: Ada (one organization), Grace (two), or
        someone with none."""
        user = data.draw(st.sampled_from(["ada", "ada", "grace", "grace", "nobody"]), label="user")
        decision = data.draw(st.sampled_from(["approve", "approve", "deny"]), label="decision")
        org = data.draw(st.sampled_from([None, None, "acme", "globex", "initech"]), label="organization")
        fault = data.draw(MAYBE_FAULT, label="fault")
        login = data.draw(st.sampled_from([*self.logins, None, None]), label="login")
        times = 1
        if login is None:
            code = data.draw(st.text(USER_CODE_ALPHABET, min_size=8, max_size=8), label="wrong code")
            if any(known.user_code.replace("-", "") == code for known in self.logins):
                return
            times = data.draw(st.sampled_from([1, 1, 12]), label="times")
        else:
            spelling = data.draw(st.sampled_from(["display", "lower", "compact"]), label="spelling")
            code = {
                "display": login.user_code,
                "lower": login.user_code.lower(),
                "compact": login.user_code.replace("-", ""),
            }[spelling]
        body: dict[str, Any] = {"user_code": code, "decision": decision}
        if org is not None:
            body["organization_id"] = org
        for _ in range(times):
            self.send("POST", "/oauth/device/verify", self.decide_expect(user, login, decision, org), fault,
                      body=body, claims=self.signed_in(user))  # fmt: skip

    # ------------------------------------------------------------ actions: polling and exchange

    def exchange_expect(self, login: Login, client: str, route: str) -> Expect:
        now = self.now
        pk = grant_pk(login)
        if client != login.client:
            return Expect("invalid_grant", budget=["UpdateItem"], label="code_of_another_client")
        if login.status == "issued":
            family = login.family
            assert family is not None and login.issued_at is not None
            resent = not family.revoked and now < login.issued_at + GRACE and family.generation == 1
            if not resent:
                return Expect("invalid_grant", budget=["UpdateItem"], label="code_used")
            first = family.tokens[0]

            def again(result: HttpResult) -> None:
                self.check_issued(login, result, refresh=first, scope=login.scope, route=route)

            return Expect("ok", budget=["UpdateItem"], apply=again, label="exchange_resent")
        if now >= login.expires_at:
            return Expect("expired_token", budget=["UpdateItem"], label="code_expired")
        if login.status == "denied":
            return Expect("access_denied", budget=["UpdateItem"], label="poll_denied")
        if login.status == "pending":
            too_fast = (
                login.last_poll_at is not None and now < login.last_poll_at + login.interval - POLL_JITTER
            )
            if not too_fast:

                def polled(_: HttpResult) -> None:
                    login.last_poll_at = now

                return Expect("authorization_pending", {pk: {"last_poll_at"}}, ["UpdateItem", "UpdateItem"],
                              polled, label="pending")  # fmt: skip
            grown = max(min(login.interval + SLOW_DOWN_STEP, SLOW_DOWN_CEILING), login.interval)

            def slowed(_: HttpResult) -> None:
                login.interval = grown

            calls = ["UpdateItem", "UpdateItem"] if grown > login.interval else ["UpdateItem"]
            return Expect("slow_down", {pk: {"interval"}}, calls, slowed, interval=grown, label="slow_down")

        def issued(result: HttpResult) -> None:
            login.status, login.issued_at = "issued", now
            login.family = Family([], rotated_at=now, expires_at=now + FAMILY_TTL)
            token = self.check_issued(login, result, refresh=None, scope=login.scope, route=route)
            assert tokens.parse_refresh_token(token).generation == 1  # type: ignore[union-attr]
            login.family.tokens.append(token)

        fields = {
            "status",
            "issued_at",
            "family_expires_at",
            "ttl",
            "rt_digest",
            "rt_generation",
            "rt_rotated_at",
            "access_ttl",  # the client's policy, kept for the session's life
            "rotation_grace",
            *SESSION_KEYS,  # it is a session now: in the indexes
        }
        return Expect("ok", {pk: fields}, ["UpdateItem"], issued, label="issued")

    def exchange(self, data: st.DataObject) -> None:
        """Poll (RFC 8628) or exchange (product API) a device code, once or twice in a row (too fast, if
        it is pending), by its client or another; a re-sent exchange is this again."""
        route = data.draw(st.sampled_from(["oauth", "product"]), label="route")
        other_client = data.draw(st.sampled_from([False, False, False, False, True]), label="other client")
        basic = data.draw(st.booleans(), label="basic")
        fault = data.draw(MAYBE_FAULT, label="fault")
        login = data.draw(st.sampled_from(self.logins), label="login")
        client = (
            {"demo-cli": "backend", "backend": "demo-cli"}[login.client] if other_client else login.client
        )
        for _ in range(data.draw(st.sampled_from([1, 1, 2]), label="requests")):
            self.exchange_with(login, client, route, basic, fault)

    def exchange_with(self, login: Login, client: str, route: str, basic: bool, fault: Fault | None) -> None:
        expect = self.exchange_expect(login, client, route)
        if route == "oauth":
            form, headers = self.creds(client, basic=basic)
            form |= {"grant_type": DEVICE_GRANT, "device_code": login.device_code}
            self.send("POST", "/oauth/token", expect, fault, form=form, headers=headers)
        else:
            body = {"device_code": login.device_code, "client_id": client}
            self.send("POST", "/auth/device/exchange", expect, fault, body=body, headers=self.basic(client))

    # ------------------------------------------------------------ actions: refresh

    def refresh_expect(self, login: Login, k: int, asked: list[str] | None, route: str) -> Expect:
        """Present generation ``k`` of the login's family (asking for ``asked`` scopes)."""
        family = login.family
        assert family is not None
        g, now, pk = family.generation, self.now, grant_pk(login)
        if family.revoked or now >= family.expires_at:
            return Expect("invalid_grant", budget=["UpdateItem"], label="refresh_refused_revoked_or_expired")
        if k in (g, g - 1) and asked is not None and any(s not in login.scope for s in asked):
            return Expect("invalid_scope", budget=["UpdateItem"], label="wider_scope_refused")
        scope = asked or login.scope
        if k == g:

            def rotated(result: HttpResult) -> None:
                token = self.check_issued(login, result, refresh=None, scope=scope, route=route)
                assert tokens.parse_refresh_token(token).generation == g + 1  # type: ignore[union-attr]
                family.tokens.append(token)
                family.rotated_at = now
                STATS.max_generation = max(STATS.max_generation, family.generation)

            fields = {"rt_prev_digest", "rt_digest", "rt_generation", "rt_rotated_at", "idle_expires_at"}
            return Expect("ok", {pk: fields}, ["UpdateItem"], rotated, label="rotated")
        if k == g - 1 and now < family.rotated_at + GRACE:

            def same(result: HttpResult) -> None:
                self.check_issued(login, result, refresh=family.current, scope=scope, route=route)

            return Expect("ok", budget=["UpdateItem"], apply=same, label="grace_same_successor")

        def reused(_: HttpResult) -> None:
            family.revoked = True

        return Expect("invalid_grant", {pk: ENDED}, ["UpdateItem", "UpdateItem"], reused,
                      label="reuse_detected")  # fmt: skip

    def refresh(self, data: st.DataObject) -> None:
        """Present a family's current, previous or an older refresh token: in the body, in the cookie
        (from the allowed Origin, or not), or to the token endpoint (narrowing the scope, asking for the
        same, or for more), by its client or another."""
        route = data.draw(st.sampled_from(["body", "cookie", "oauth"]), label="route")
        which = data.draw(st.sampled_from(["current", "previous", "older", "current"]), label="which")
        scope = data.draw(st.sampled_from([None, None, "narrow", "same", "wider"]), label="scope")
        variant = data.draw(
            st.sampled_from(["plain"] * 8 + ["other_client", "no_auth", "bad_origin"]), label="variant"
        )
        fault = data.draw(MAYBE_FAULT, label="fault")
        live = data.draw(st.sampled_from([True, True, True, False]), label="a live family")
        login = data.draw(st.sampled_from(self.families(alive=live) or self.families()), label="login")
        family = login.family
        assert family is not None
        g = family.generation
        k = {"current": g, "previous": max(1, g - 1)}.get(which) or data.draw(
            st.integers(1, max(1, g - 1)), label="generation"
        )
        asked: list[str] | None = None
        if route == "oauth" and scope is not None:
            extra = next(s for s in ["write", "admin", "delete"] if s not in login.scope)
            asked = {"narrow": login.scope[:1], "same": login.scope, "wider": [*login.scope[:1], extra]}[
                scope
            ]
        basic = data.draw(st.booleans(), label="basic")
        for _ in range(data.draw(st.sampled_from([1, 1, 2]), label="requests")):  # twice: sent again at once
            self.refresh_with(login, k, route, asked, variant, basic, fault)

    def refresh_with(
        self,
        login: Login,
        k: int,
        route: str,
        asked: list[str] | None,
        variant: str,
        basic: bool,
        fault: Fault | None,
    ) -> None:
        assert login.family is not None
        token = login.family.tokens[k - 1]
        expect = self.refresh_expect(login, k, asked, "product" if route == "body" else route)
        if route == "oauth":
            client = login.client
            if asked is not None and any(s not in CLIENT_SCOPES[client] for s in asked):
                expect = Expect("invalid_scope", budget=[])  # never the client's: refused before the write
            if variant == "other_client":
                client = {"demo-cli": "backend", "backend": "demo-cli"}[login.client]
                expect = Expect("invalid_grant", budget=[])
            form, headers = self.creds(client, basic=basic)
            form |= {"grant_type": "refresh_token", "refresh_token": token}
            if asked is not None:
                form["scope"] = " ".join(asked)
            self.send("POST", "/oauth/token", expect, fault, form=form, headers=headers)
            return
        headers = self.basic(login.client)
        if variant == "no_auth" and login.client == "backend":
            headers, expect = {}, Expect("invalid_client", budget=[])
        if route == "body":
            self.send("POST", "/auth/refresh", expect, fault, body={"refresh_token": token}, headers=headers)
            return
        origin = ORIGIN
        if variant == "bad_origin":
            origin, expect = "https://evil.example", Expect("access_denied", budget=[])
        self.send("POST", "/auth/refresh", expect, fault, cookies=[f"refresh_token={token}"],
                  headers={**headers, "origin": origin})  # fmt: skip

    def rotate_many(self, data: st.DataObject) -> None:
        """Rotate one family many times: every rotation costs the same HMACs and one UpdateItem,
        whatever the generation."""
        n = data.draw(st.integers(2, 8), label="rotations")
        login = data.draw(st.sampled_from(self.families(alive=True)), label="login")
        family = login.family
        assert family is not None
        costs = set()
        for _ in range(n):
            expect = self.refresh_expect(login, family.generation, None, "product")
            assert expect.kind == "ok"
            self.send("POST", "/auth/refresh", expect, body={"refresh_token": family.current},
                      headers=self.basic(login.client))  # fmt: skip
            costs.add(self.world.spy.per_request)
            STATS.rotation_costs.setdefault(login.client, {})[family.generation] = self.world.spy.per_request
        assert len(costs) == 1, f"the HMAC cost of a rotation changed with the generation: {costs}"

    # ------------------------------------------------------------ actions: revocation, introspection

    def revoke(self, data: st.DataObject) -> None:
        """Revoke a refresh or an access token (RFC 7009), by its client or another; or log out with a
        refresh token in the body or the cookie."""
        route = data.draw(
            st.sampled_from(["revoke", "revoke", "logout_body", "logout_cookie"]), label="route"
        )
        what = data.draw(st.sampled_from(["refresh", "refresh", "access"]), label="what")
        other_client = data.draw(st.sampled_from([False, False, False, True]), label="other client")
        fault = data.draw(MAYBE_FAULT, label="fault")
        login = data.draw(st.sampled_from(self.families()), label="login")
        family = login.family
        assert family is not None
        pk = grant_pk(login)

        def ended(_: HttpResult) -> None:
            family.revoked = True

        ends = Expect("ok", {pk: ENDED}, ["UpdateItem"], ended, label="family_revoked")
        if route == "revoke" and what == "access" and login.access:
            access = data.draw(st.sampled_from(login.access), label="access token")
            client = (
                {"demo-cli": "backend", "backend": "demo-cli"}[login.client] if other_client else login.client
            )
            if access.exp <= self.now or client != login.client:
                expect = Expect("ok", budget=[])
            elif family.revoked:
                expect = Expect("ok", budget=["GetItem"])
            else:
                expect = Expect(
                    "ok", ends.changes, ["GetItem", "UpdateItem"], ended, label="family_revoked_by_access"
                )
            form, headers = self.creds(client, basic=data.draw(st.booleans(), label="basic"))
            self.send(
                "POST", "/oauth/revoke", expect, fault, form={**form, "token": access.token}, headers=headers
            )
            return
        token = data.draw(st.sampled_from(family.tokens), label="refresh token")
        expect = Expect("ok", budget=["UpdateItem"]) if family.revoked else ends
        if route == "revoke":
            client = login.client
            if other_client:
                client = {"demo-cli": "backend", "backend": "demo-cli"}[login.client]
                expect = Expect("ok", budget=[])
            form, headers = self.creds(client, basic=data.draw(st.booleans(), label="basic"))
            result = self.send("POST", "/oauth/revoke", expect, fault, form={**form, "token": token},
                               headers=headers)  # fmt: skip
            assert result is None or result.json() == {}
            return
        headers = self.basic(login.client)
        if other_client and login.client == "backend":  # its client's rules, as on /auth/refresh
            headers, expect = {}, Expect("invalid_client", budget=[])
        if route == "logout_body":
            result = self.send(
                "POST", "/auth/logout", expect, fault, body={"refresh_token": token}, headers=headers
            )
        else:
            result = self.send("POST", "/auth/logout", expect, fault, cookies=[f"refresh_token={token}"],
                               headers={**headers, "origin": ORIGIN})  # fmt: skip
        if result is not None and result.status == 200:
            assert result.json() == {"status": "signed_out"}
            assert any(c.startswith("refresh_token=;") and "Max-Age=0" in c for c in result.cookies), (
                result.cookies
            )

    def introspect_expect(self, login: Login, token: str) -> tuple[bool, Expect]:
        family = login.family
        assert family is not None
        alive = not family.revoked and family.expires_at > self.now
        if token.startswith("rt_"):
            return alive and token == family.current, Expect("ok", budget=["GetItem"])
        exp = next(a.exp for a in login.access if a.token == token)
        if exp <= self.now:
            return False, Expect("ok", budget=[])
        return alive, Expect("ok", budget=["GetItem"])

    def introspect_one(self, login: Login, token: str, fault: Fault | None = None) -> None:
        active, expect = self.introspect_expect(login, token)
        form, headers = self.creds("backend", basic=len(token) % 2 == 0)
        result = self.send(
            "POST", "/oauth/introspect", expect, fault, form={**form, "token": token}, headers=headers
        )
        if result is None:
            return
        body = result.json()
        assert body["active"] is active, (
            f"{login} {'refresh' if token.startswith('rt_') else 'access'} token: {body}"
        )
        if active:
            assert body["sid"] == login.grant_id and body["client_id"] == login.client, body
            assert body["sub"] == getattr(self.seed, USERS[login.user or "ada"][0])["sub"], body
            if token.startswith("rt_"):
                assert body["token_type"] == "refresh_token" and body["scope"] == " ".join(login.scope), body
        else:
            assert body == {"active": False}, body

    def introspect(self, data: st.DataObject) -> None:
        """RFC 7662 with the resource server's client (`backend`), or a public client that may not."""
        what = data.draw(st.sampled_from(["refresh", "refresh", "access", "public"]), label="what")
        fault = data.draw(MAYBE_FAULT, label="fault")
        login = data.draw(st.sampled_from(self.families()), label="login")
        family = login.family
        assert family is not None
        if what == "public":  # RFC 7662 is for confidential clients
            form = {"client_id": "demo-cli", "token": family.current}
            self.send("POST", "/oauth/introspect", Expect("unauthorized_client", budget=[]), fault, form=form)
            return
        pool = family.tokens if what == "refresh" or not login.access else [a.token for a in login.access]
        self.introspect_one(login, data.draw(st.sampled_from(pool), label="token"), fault)

    def forged(self, data: st.DataObject) -> None:
        """A well-formed token naming a real family, minted with another key: refused before any
        DynamoDB call, nothing changes."""
        route = data.draw(st.sampled_from(["body", "oauth", "revoke", "introspect", "logout"]), label="route")
        generation = data.draw(st.sampled_from(["first", "current", "next"]), label="generation")
        login = data.draw(st.sampled_from(self.families()), label="login")
        family = login.family
        assert family is not None
        g = {"first": 1, "current": family.generation, "next": family.generation + 1}[generation]
        token = forged_refresh_token(login.grant_id, login.client, g)
        self.remember_refresh(token)
        nothing = Expect("ok", budget=[])
        refused = Expect("invalid_grant", budget=[])
        form, headers = self.creds(login.client, basic=False)
        if route == "body":
            self.send(
                "POST",
                "/auth/refresh",
                refused,
                body={"refresh_token": token},
                headers=self.basic(login.client),
            )
        elif route == "oauth":
            form |= {"grant_type": "refresh_token", "refresh_token": token}
            self.send("POST", "/oauth/token", refused, form=form, headers=headers)
        elif route == "revoke":
            self.send("POST", "/oauth/revoke", nothing, form={**form, "token": token}, headers=headers)
        elif route == "logout":
            self.send(
                "POST",
                "/auth/logout",
                nothing,
                body={"refresh_token": token},
                headers=self.basic(login.client),
            )
        else:
            backend, _ = self.creds("backend", basic=False)
            result = self.send("POST", "/oauth/introspect", nothing, form={**backend, "token": token})
            assert result is not None and result.json() == {"active": False}

    # ------------------------------------------------------------ actions: time

    def time_passes(self, data: st.DataObject) -> None:
        """Within the grace, just past it, past the device code's lifetime, the access token's, the family's."""
        seconds = data.draw(st.sampled_from([1, 4, 9, GRACE - 1, GRACE, GRACE + 1, 60, DEVICE_TTL - 1,
                                             DEVICE_TTL + 1, ACCESS_TTL - 1, ACCESS_TTL + 1, FAMILY_TTL + 1]),
                            label="seconds")  # fmt: skip
        self.clock.advance(seconds)

    # ------------------------------------------------------------ the one rule

    def possible(self, action: str) -> bool:
        if action in ("refresh", "revoke", "introspect", "forged"):
            return bool(self.families())
        if action == "rotate_many":
            return bool(self.families(alive=True))
        if action == "exchange":
            return bool(self.logins)
        return True

    @rule(data=st.data())
    def act(self, data: st.DataObject) -> None:
        """One step: an action drawn by weight (ACTIONS) among those possible now. One rule rather than
        one per action, so that the mix is the same in every run (hypothesis favours some rules over
        others, and a short run would otherwise hardly refresh)."""
        possible = [name for name, weight in ACTIONS if self.possible(name) for _ in range(weight)]
        action = data.draw(st.sampled_from(possible), label="action")
        self.steps += 1
        STATS.steps += 1
        STATS.rules[action] = STATS.rules.get(action, 0) + 1
        getattr(self, action)(data)

    # ------------------------------------------------------------ invariants

    @invariant()
    def table_agrees_with_the_model(self) -> None:
        STATS.invariants += 1
        table = fast_snapshot()
        assert table == self.table, "the table changed outside the requests"
        grants = {pk: item for (pk, _), item in table.items() if pk.startswith("GRANT#")}
        known = {grant_pk(login): login for login in self.logins}
        for pk, item in grants.items():
            login = known.get(pk)
            if login is None:  # only a lost device authorization's request, which nobody can redeem
                assert pk in self.orphans, f"{pk} is in the table, and the model never saw it created"
                assert value(item, "status") == "pending", f"orphan {pk} left pending: {item}"
                continue
            self.grant_agrees(login, item)
        for login in self.logins:
            assert grant_pk(login) in grants, f"{login}'s grant is gone"
            code = table.get((f"USERCODE#{login.user_code.replace('-', '')}", "USERCODE"))
            assert value(code, "grant_id") == login.grant_id and value(code, "expires_at") == login.expires_at
        for (pk, sk), item in table.items():
            if pk.startswith("RATE#verify#"):
                key = (pk.removeprefix("RATE#verify#"), int(sk.removeprefix("WINDOW#")))
                assert counted(item) == self.attempts.get(key, 0), f"{pk} {sk}: {item}"
        for key, count in self.attempts.items():
            assert count == 0 or (f"RATE#verify#{key[0]}", f"WINDOW#{key[1]}") in table, key
        self.no_secret_in(table)

    def grant_agrees(self, login: Login, item: Item) -> None:
        """One grant item against its login: state, decision, and the family's one current token."""
        status = value(item, "status")
        assert status == login.status, f"{login}: table says {status}"
        assert value(item, "client_id") == login.client and value(item, "scope_list") == login.scope
        assert value(item, "device_code_digest") == self.digest(login.device_code)
        assert value(item, "expires_at") == login.expires_at and value(item, "interval") == login.interval
        assert value(item, "last_poll_at") == login.last_poll_at, (login, item)
        if login.user is not None:
            assert value(item, "user_id") == getattr(self.seed, USERS[login.user][0])["sub"]
            assert value(item, "org_id") == login.org and value(item, "decided_at") == login.decided_at
        family = login.family
        if family is None:
            assert not {"rt_digest", "rt_prev_digest", "issued_at", "revoked_at"} & item.keys(), (login, item)
            assert value(item, "rt_generation") in (None, 0), (login, item)
            return
        g = family.generation
        assert value(item, "issued_at") == login.issued_at
        assert value(item, "rt_generation") == g, f"{login}: generation {value(item, 'rt_generation')} != {g}"
        assert value(item, "rt_digest") == self.digest(family.current), (
            f"{login}: not the model's current token"
        )
        if g > 1:
            assert value(item, "rt_prev_digest") == self.digest(family.tokens[-2])
        else:
            assert "rt_prev_digest" not in item
        assert value(item, "rt_rotated_at") == family.rotated_at
        assert value(item, "family_expires_at") == family.expires_at
        revoked_at = value(item, "revoked_at")
        assert (revoked_at is not None) == family.revoked, (
            f"{login}: revoked_at {revoked_at}, model {family.revoked}"
        )
        if family.revoked:
            if family.revoked_at is None:
                family.revoked_at = revoked_at
            assert revoked_at == family.revoked_at, "revocation is final: revoked_at is never rewritten"

    def no_secret_in(self, table: Snapshot) -> None:
        text = json.dumps(list(table.values()))
        leaked = [s[:12] for s in self.secrets if s in text]
        assert not leaked, f"secrets at rest: {leaked}"

    @invariant()
    def only_the_current_refresh_token_is_active(self) -> None:
        """Side-effect-free reads (introspection) of the families this step touched: the current token is
        active exactly while the family lives; the previous one and the first one never are (even inside
        the grace, where presenting the previous one answers the same successor)."""
        STATS.invariants += 1
        touched, self.touched = self.touched, []
        for login in touched[:1]:
            family = login.family
            assert family is not None
            self.introspect_one(login, family.current)
            if family.generation > 1 and not family.revoked:  # rotated: the previous one, or the first one
                stale = family.tokens[-2] if self.steps % 2 else family.tokens[0]
                self.introspect_one(login, stale)

    @invariant()
    def no_unexpected_error_logged(self) -> None:
        STATS.invariants += 1
        lines = self.world.logs.lines
        for line in lines[self.log_seen :]:
            assert "unexpected error" not in line, line
            leaked = [s[:12] for s in self.secrets if s in line]
            assert not leaked, f"a secret in the logs: {leaked}"
        self.log_seen = len(lines)

    def teardown(self) -> None:
        try:
            if self.logins and sys.exc_info()[1] is None:  # after a failure, its own report only
                self.check_against_scan()
                for login in self.families():  # every family's current token, at the end
                    assert login.family is not None
                    self.introspect_one(login, login.family.current)
        finally:
            service_clock.use(None)
            self.world.logs.lines.clear()
            self.world.drain()


def machine_for(world: World) -> type[LifecycleMachine]:
    """The machine, bound to one test's world."""
    return type("LifecycleMachine", (LifecycleMachine,), {"world": world})
