"""End-to-end fixtures: the whole API on a local port (local.stack.LocalStack), spoken to over HTTP.

Fixtures
--------
``stack`` (session)
    A running stack on a free port: a ``local.stack.StackInfo``, the same as ``make serve`` writes to
    .local/serve.json, with attribute access::

        stack.api_url                      # http://127.0.0.1:<port>; also the tokens' issuer
        stack.aws_endpoint_url             # the embedded AWS endpoint (moto, one request at a time)
        stack.region, stack.table_name, stack.keys_secret_id
        stack.user_pool_id, stack.user_pool_client_id, stack.user_pool_issuer
        stack.demo.username / .password / .sub / .name / .organization_id / .organization_name
        stack.clients.public.client_id                          # device flow + refresh, scopes read write
        stack.clients.confidential.client_id / .client_secret   # for introspection

    ``stack.to_dict()`` gives nested dicts. One stack serves the whole session: tests must not depend on
    each other's data (start their own device flows), and should use ``new_user`` rather than the demo
    user for anything the service limits per user (wrong user codes: 10 per user per 15 minutes).
``clocked_stack`` (session)
    A stack of its own (not ``stack``) whose functions' clock the test moves instead of waiting:
    ``clocked_stack.advance(11)`` (every execution environment at once), ``clocked_stack.now()`` (its
    time, to judge its tokens by), ``.info`` (a ``StackInfo``), ``.id_token()`` (the demo user's). Its
    own, because moving the clock of the shared stack would move it under every other test: the access
    tokens it issues afterwards carry an ``iat`` ahead of the wall clock (an honest verifier refuses
    them), and a clock moved back would make fresh grants look stale. Its clock only moves forward, and
    the tests that share it assume nothing of its offset from the wall clock.
``local_stack`` (session)
    The ``LocalStack`` object behind ``stack`` (``pids()``: the processes it started).
``access_log`` (session)
    The stack's access lines so far (``access_log.lines()``), one per request.
``sign_in`` (session)
    ``sign_in(username=None, password=None) -> str``: signs a user in to the stack's Cognito user pool
    (InitiateAuth USER_PASSWORD_AUTH on the embedded endpoint) and returns the ID token, which is what
    the JWT authorizer of /oauth/device/verify accepts. Defaults to the demo user.
``id_token`` (function)
    A fresh ID token of the demo user: ``headers={"Authorization": f"Bearer {id_token}"}``.
``new_user`` (session)
    ``new_user(organization_id=<demo org>, role="member") -> CognitoUser``: a new confirmed user of the
    pool (``.username``, ``.password``, ``.sub``, ``.id_token()``), a member of that organization
    (``organization_id=None``: of none).
"""

from __future__ import annotations

import io
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from local.stack import LocalStack, StackInfo

# Every request of these tests comes from 127.0.0.1, hundreds of device flows in all: the per-address
# and per-client limits of device authorization (DeviceAuthorizationsPerIp, ...PerClient) raised far out of the way, never off, so that
# its counter still runs in the transaction (its own tests: tests/integration/test_sessions.py).
MANY_FLOWS = {"DeviceAuthorizationsPerIp": "1000000", "DeviceAuthorizationsPerClient": "1000000"}


class AccessLog(io.StringIO):
    """The stack's access lines: kept for assertions, and echoed to stderr (pytest shows them on failure)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            if sys.__stderr__ is not None:
                sys.__stderr__.write(text)
            return super().write(text)

    def lines(self) -> list[str]:
        with self._lock:
            return self.getvalue().splitlines()


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    stack = LocalStack(port=0, concurrency=4, access_log=AccessLog(), parameters=MANY_FLOWS)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@dataclass(frozen=True)
class ClockedStack:
    """A running stack whose functions' clock the test moves (``LocalStack(clock_file=...)``)."""

    local: LocalStack
    info: StackInfo

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "a clocked stack's time only moves forward"
        self.local.advance_clock(seconds)

    def now(self) -> float:
        return self.local.now()

    def id_token(self) -> str:
        return cognito_id_token(self.info, self.info.demo.username, self.info.demo.password)


@pytest.fixture(scope="session")
def clocked_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockedStack]:
    clock_file = tmp_path_factory.mktemp("clock") / "offset"
    stack = LocalStack(
        port=0, concurrency=2, access_log=AccessLog(), clock_file=clock_file, parameters=MANY_FLOWS
    )
    info = stack.start()
    try:
        yield ClockedStack(stack, info)
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def access_log(local_stack: LocalStack) -> AccessLog:
    assert isinstance(local_stack.access_log, AccessLog)
    return local_stack.access_log


@pytest.fixture(scope="session")
def stack(local_stack: LocalStack) -> StackInfo:
    assert local_stack.info is not None
    return local_stack.info


def _cognito(info: StackInfo) -> Any:
    return boto3.client(
        "cognito-idp",
        endpoint_url=info.aws_endpoint_url,
        region_name=info.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def cognito_id_token(info: StackInfo, username: str, password: str, client_id: str | None = None) -> str:
    """InitiateAuth USER_PASSWORD_AUTH against the stack's user pool; the ID token."""
    result = _cognito(info).initiate_auth(
        ClientId=client_id or info.user_pool_client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    return str(result["AuthenticationResult"]["IdToken"])


SignIn = Callable[..., str]


@pytest.fixture(scope="session")
def sign_in(stack: StackInfo) -> SignIn:
    def sign_in(username: str | None = None, password: str | None = None) -> str:
        return cognito_id_token(stack, username or stack.demo.username, password or stack.demo.password)

    return sign_in


@pytest.fixture
def id_token(sign_in: SignIn) -> str:
    return sign_in()


@dataclass(frozen=True)
class CognitoUser:
    username: str
    password: str
    sub: str
    info: StackInfo

    def id_token(self) -> str:
        return cognito_id_token(self.info, self.username, self.password)


NewUser = Callable[..., CognitoUser]


@pytest.fixture(scope="session")
def new_user(stack: StackInfo) -> NewUser:
    from authcore.store import Store
    from local import admin

    store = Store(
        boto3.client(
            "dynamodb",
            endpoint_url=stack.aws_endpoint_url,
            region_name=stack.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ),
        stack.table_name,
    )

    def new_user(
        organization_id: str | None = stack.demo.organization_id, role: str = "member"
    ) -> CognitoUser:
        username = f"user-{uuid.uuid4().hex[:10]}@example.com"
        password = f"Pw-{uuid.uuid4().hex[:12]}-X9"
        idp = _cognito(stack)
        created = idp.admin_create_user(
            UserPoolId=stack.user_pool_id,
            Username=username,
            UserAttributes=[
                {"Name": "email", "Value": username},
                {"Name": "email_verified", "Value": "true"},
                {"Name": "name", "Value": username.split("@")[0]},
            ],
            MessageAction="SUPPRESS",
        )["User"]
        idp.admin_set_user_password(
            UserPoolId=stack.user_pool_id, Username=username, Password=password, Permanent=True
        )
        sub = next(str(a["Value"]) for a in created["Attributes"] if a["Name"] == "sub")
        if organization_id is not None:
            admin.add_member(store, sub, organization_id, role)
        return CognitoUser(username, password, sub, stack)

    return new_user
