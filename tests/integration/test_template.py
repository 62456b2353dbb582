"""template.yaml says what the contract and the design say: routes, authorizer, table, least privilege.

The SAM CLI checks (lint, build) run when .tools/sam/bin/sam exists (`make .tools/sam/bin/sam`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from authcore import routes
from local.template import FunctionSpec, Route, functions, load_template, table_spec, ttl_attribute

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAM = ROOT / ".tools" / "sam" / "bin" / "sam"

# The routes (the layer's one list, authcore.routes), each with the one function that serves it.
ROUTES = {(r.method, r.path): r.resource for r in routes.ROUTES}
JWT_ROUTES = {(r.method, r.path) for r in routes.ROUTES if r.signed_in}

# Least privilege: exactly these actions, on the table and on the two key secrets, and nothing else.
# (test_what_the_code_calls_is_what_the_template_grants, below, checks the code against these.)
TABLE_ACTIONS = {
    # the device request, its user code and the per-address counter: one transaction, authorized per item
    "DeviceAuthorizationFunction": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
    "DeviceVerificationFunction": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
    "DeviceExchangeFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "TokenFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "RefreshFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "RevocationFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "SessionsFunction": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"},
    "DiscoveryFunction": set(),
    "WebFunction": set(),
    "KeyRotationFunction": set(),
    "SecurityEventsFunction": set(),  # reads the stream through its event source mapping, not its code
}
READ_KEYS = {"secretsmanager:GetSecretValue"}
# The private key set (KeysSecret): only the functions that sign tokens or compute keyed digests.
SIGNERS = {
    "DeviceAuthorizationFunction",
    "DeviceExchangeFunction",
    "TokenFunction",
    "RefreshFunction",
    "RevocationFunction",
}
SECRET_ACTIONS = {name: READ_KEYS if name in SIGNERS else set() for name in TABLE_ACTIONS} | {
    "KeyRotationFunction": {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    },
}
# The public key set (KeysPublicSecret): read by discovery, published by the rotation function.
PUBLIC_SECRET_ACTIONS: dict[str, set[str]] = {name: set() for name in TABLE_ACTIONS} | {
    "DiscoveryFunction": READ_KEYS,
    "KeyRotationFunction": {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"},
}
TABLE_REF = {"Fn::GetAtt": ["Table", "Arn"]}
KEYS_REF = {"Ref": "KeysSecret"}
PUBLIC_KEYS_REF = {"Ref": "KeysPublicSecret"}
# The sessions index by person: only the sessions function queries it (the admin sweeps are a tool).
USER_INDEX_REF = {"Fn::Sub": "${Table.Arn}/index/ByUser"}
INDEX_ACTIONS: dict[str, set[str]] = {name: set() for name in TABLE_ACTIONS} | {
    "SessionsFunction": {"dynamodb:Query"},
}
# The security events bus (EventBusName, or the account's default bus): the events function and keys.rotated.
EVENT_BUS_REF = {
    "Fn::Sub": [
        "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${Bus}",
        {"Bus": {"Fn::If": ["HasEventBusName", {"Ref": "EventBusName"}, "default"]}},
    ]
}
EVENT_ACTIONS: dict[str, set[str]] = {name: set() for name in TABLE_ACTIONS} | {
    "SecurityEventsFunction": {"events:PutEvents"},
    "KeyRotationFunction": {"events:PutEvents"},
}
FORBIDDEN_ACTIONS = (
    "dynamodb:Scan",
    "dynamodb:DeleteItem",
    "dynamodb:DeleteTable",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLSelect",
    "dynamodb:PartiQLUpdate",
    "secretsmanager:DeleteSecret",
    "secretsmanager:UpdateSecret",
    "secretsmanager:PutResourcePolicy",
)

# The contract's default lifetimes.
LIFETIMES = {
    "DEVICE_CODE_TTL_SECONDS": "900",
    "POLL_INTERVAL_SECONDS": "5",
    "ACCESS_TOKEN_TTL_SECONDS": "3600",
    "REFRESH_TOKEN_TTL_SECONDS": "2592000",
    "ROTATION_GRACE_SECONDS": "30",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def specs(template: dict[str, Any]) -> dict[str, FunctionSpec]:
    return {spec.logical_id: spec for spec in functions(template)}


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"][logical_id]
    return found


def resolve_default(template: dict[str, Any], value: Any) -> Any:
    """A !Ref to a parameter, resolved to that parameter's default as a string; anything else as is."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in template.get("Parameters", {}):
        return str(template["Parameters"][value["Ref"]]["Default"])
    return value


# ---------------------------------------------------------------- table


def test_table_has_string_keys_ttl_and_on_demand_billing(template: dict[str, Any]) -> None:
    spec = table_spec(template)
    assert spec["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert sorted(spec["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "session_at", "AttributeType": "N"},
        {"AttributeName": "session_client", "AttributeType": "S"},
        {"AttributeName": "session_org", "AttributeType": "S"},
        {"AttributeName": "session_user", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ]
    # sessions by person, organization and client, newest first; keys only, so that a rotation (which
    # changes no indexed attribute) writes no index
    assert {
        i["IndexName"]: ([k["AttributeName"] for k in i["KeySchema"]], i["Projection"]["ProjectionType"])
        for i in spec["GlobalSecondaryIndexes"]
    } == {
        "ByUser": (["session_user", "session_at"], "KEYS_ONLY"),
        "ByOrg": (["session_org", "session_at"], "KEYS_ONLY"),
        "ByClient": (["session_client", "session_at"], "KEYS_ONLY"),
    }
    assert spec["BillingMode"] == "PAY_PER_REQUEST"
    assert ttl_attribute(template) == "ttl"


def test_table_has_point_in_time_recovery_and_encryption(template: dict[str, Any]) -> None:
    (table,) = (r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table")
    properties = table["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True


# ---------------------------------------------------------------- functions and routes


def test_every_function_is_known(specs: dict[str, FunctionSpec]) -> None:
    assert set(specs) == set(TABLE_ACTIONS)


def test_every_function_has_its_handler_module(specs: dict[str, FunctionSpec]) -> None:
    missing = []
    for spec in specs.values():
        module = spec.handler.rsplit(".", 1)[0]
        if not (ROOT / spec.code_uri / f"{module}.py").is_file():
            missing.append(f"{spec.logical_id}: {spec.code_uri}{module}.py")
    assert missing == []


def test_every_contract_route_is_served_once_by_its_function(specs: dict[str, FunctionSpec]) -> None:
    served = [((r.method, r.path), spec.logical_id) for spec in specs.values() for r in spec.routes]
    duplicates = [route for route, n in Counter(route for route, _ in served).items() if n > 1]
    assert duplicates == []
    assert dict(served) == ROUTES


def test_the_handlers_the_tests_invoke_are_the_ones_the_template_routes_to(
    specs: dict[str, FunctionSpec],
) -> None:
    from tests.conftest import ROUTES as TESTED_ROUTES

    routed = {(r.method, r.path): Path(spec.code_uri).name for spec in specs.values() for r in spec.routes}
    assert {route: routed.get(route) for route in TESTED_ROUTES} == TESTED_ROUTES


def test_no_route_has_an_api_gateway_authorizer(
    template: dict[str, Any], specs: dict[str, FunctionSpec]
) -> None:
    """An authorizer answers 401 itself ({"message":"Unauthorized"}), outside the contract: the signed-in
    routes verify the ID token in the function instead (authcore.identity)."""
    routes: list[Route] = [r for spec in specs.values() for r in spec.routes]
    assert [(r.method, r.path) for r in routes if r.uses_jwt_authorizer] == []
    apis = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::HttpApi"]
    assert len(apis) == 1 and "Auth" not in apis[0]["Properties"]


def test_the_signed_in_routes_function_knows_the_identity_provider(
    template: dict[str, Any], specs: dict[str, FunctionSpec]
) -> None:
    """The same issuer and audience the JWT authorizer had: the stack's user pool and its app client by
    default, AuthIssuer and AuthAudience when set."""
    signed_in = {ROUTES[route] for route in JWT_ROUTES}
    assert signed_in == {"DeviceVerificationFunction", "SessionsFunction"}
    for function in signed_in:
        check_identity_provider(specs[function].environment)
    others = [s for name, s in specs.items() if name not in signed_in]
    assert all("AUTH_ISSUER" not in s.environment for s in others)


def check_identity_provider(env: dict[str, Any]) -> None:
    assert env["AUTH_ISSUER"] == {
        "Fn::If": [
            "UseCognito",
            {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"},
            {"Ref": "AuthIssuer"},
        ]
    }
    assert env["AUTH_AUDIENCE"] == {
        "Fn::If": [
            "HasAuthAudience",
            {"Ref": "AuthAudience"},
            {"Fn::If": ["UseCognito", {"Ref": "UserPoolClient"}, ""]},
        ]
    }


def test_every_route_uses_payload_format_2(template: dict[str, Any]) -> None:
    versions = {
        (logical_id, name): event["Properties"].get("PayloadFormatVersion")
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
        for name, event in r["Properties"].get("Events", {}).items()
        if event["Type"] == "HttpApi"
    }
    assert versions
    assert {key: v for key, v in versions.items() if v != "2.0"} == {}


def test_environment_carries_the_settings_with_the_contract_defaults(
    template: dict[str, Any], specs: dict[str, FunctionSpec]
) -> None:
    for spec in specs.values():
        env = spec.environment
        assert env["TABLE_NAME"] == {"Ref": "Table"}, spec.logical_id
        assert env["KEYS_SECRET_ID"] == {"Ref": "KeysSecret"}, spec.logical_id
        lifetimes = {name: resolve_default(template, env[name]) for name in LIFETIMES}
        assert lifetimes == LIFETIMES, spec.logical_id
    web = specs["WebFunction"].environment
    assert {"USER_POOL_ID", "USER_POOL_CLIENT_ID", "COGNITO_REGION"} <= set(web)


# ---------------------------------------------------------------- least privilege


def statements(template: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    policies = resource(template, logical_id)["Properties"].get("Policies", [])
    found: list[dict[str, Any]] = []
    for policy in policies:
        # Only inline policy documents: SAM policy templates and managed policies grant more than is used.
        assert isinstance(policy, dict) and set(policy) == {"Statement"}, (logical_id, policy)
        found.extend(policy["Statement"])
    return found


def granted(template: dict[str, Any], logical_id: str, target: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for statement in statements(template, logical_id):
        if statement["Resource"] == target:
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


@pytest.mark.parametrize("logical_id", sorted(TABLE_ACTIONS))
def test_no_policy_templates_or_managed_policies(template: dict[str, Any], logical_id: str) -> None:
    """SAM policy templates (DynamoDBCrudPolicy, DynamoDBReadPolicy, AWSSecretsManagerGetSecretValuePolicy,
    ...) and managed policies grant more than the code uses: only inline statements."""
    properties = resource(template, logical_id)["Properties"]
    policies = properties.get("Policies", [])
    policies = [policies] if isinstance(policies, (str, dict)) else policies
    assert [p for p in policies if not (isinstance(p, dict) and set(p) == {"Statement"})] == []
    globals_ = template.get("Globals", {}).get("Function", {})
    assert "Policies" not in globals_ and "Role" not in globals_


def every_action(template: dict[str, Any], logical_id: str) -> set[str]:
    actions: set[str] = set()
    for statement in statements(template, logical_id):
        action = statement["Action"]
        actions.update([action] if isinstance(action, str) else action)
    return actions


@pytest.mark.parametrize("logical_id", sorted(TABLE_ACTIONS))
def test_function_grants_only_what_it_uses(template: dict[str, Any], logical_id: str) -> None:
    every = statements(template, logical_id)
    assert all(s["Effect"] == "Allow" for s in every)
    assert all(set(s) <= {"Sid", "Effect", "Action", "Resource"} for s in every), "a condition or NotAction"
    refs = (TABLE_REF, KEYS_REF, PUBLIC_KEYS_REF, EVENT_BUS_REF, USER_INDEX_REF)
    assert all(s["Resource"] in refs for s in every), "a statement on another resource"
    assert granted(template, logical_id, TABLE_REF) == TABLE_ACTIONS[logical_id]
    assert granted(template, logical_id, KEYS_REF) == SECRET_ACTIONS[logical_id]
    assert granted(template, logical_id, PUBLIC_KEYS_REF) == PUBLIC_SECRET_ACTIONS[logical_id]
    assert granted(template, logical_id, EVENT_BUS_REF) == EVENT_ACTIONS[logical_id]
    assert granted(template, logical_id, USER_INDEX_REF) == INDEX_ACTIONS[logical_id]


def test_only_the_signers_and_the_rotation_can_touch_the_private_keys(
    template: dict[str, Any], specs: dict[str, FunctionSpec]
) -> None:
    readers = {f for f in specs if "secretsmanager:GetSecretValue" in granted(template, f, KEYS_REF)}
    assert readers == SIGNERS | {"KeyRotationFunction"}
    touching = {f for f in specs if granted(template, f, KEYS_REF)}
    assert touching == readers
    # discovery serves the JWKS from the public set, and reads nothing else
    assert every_action(template, "DiscoveryFunction") == READ_KEYS
    assert granted(template, "DiscoveryFunction", PUBLIC_KEYS_REF) == READ_KEYS
    # and nobody else reads the public set (it is public, but nobody else needs it)
    public_readers = {
        f for f in specs if "secretsmanager:GetSecretValue" in granted(template, f, PUBLIC_KEYS_REF)
    }
    assert public_readers == {"DiscoveryFunction", "KeyRotationFunction"}


def test_the_web_page_discovery_and_rotation_have_no_table(template: dict[str, Any]) -> None:
    """The web page and discovery read no table and the web page no secret at all."""
    assert every_action(template, "WebFunction") == set()
    assert not any(a.startswith("dynamodb:") for a in every_action(template, "DiscoveryFunction"))
    assert not any(a.startswith("dynamodb:") for a in every_action(template, "KeyRotationFunction"))


def test_the_functions_are_told_where_the_public_key_set_is(
    template: dict[str, Any], specs: dict[str, FunctionSpec]
) -> None:
    told = {f for f, spec in specs.items() if "JWKS_SECRET_ID" in spec.environment}
    assert told == {"DiscoveryFunction", "KeyRotationFunction"}
    for logical_id in told:
        assert specs[logical_id].environment["JWKS_SECRET_ID"] == PUBLIC_KEYS_REF


def test_the_public_key_set_has_no_rotation_of_its_own(template: dict[str, Any]) -> None:
    public = resource(template, "KeysPublicSecret")
    assert public["Type"] == "AWS::SecretsManager::Secret"
    assert "GenerateSecretString" not in public["Properties"]
    rotated = [
        r["Properties"]["SecretId"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SecretsManager::RotationSchedule"
    ]
    assert rotated == [KEYS_REF]


def test_no_function_may_scan_delete_or_wildcard(
    template: dict[str, Any], specs: dict[str, FunctionSpec]
) -> None:
    bad = []
    for logical_id in specs:
        properties = resource(template, logical_id)["Properties"]
        if "Role" in properties:  # a role of its own would bypass the Policies checked here
            bad.append((logical_id, "Role"))
        for statement in statements(template, logical_id):
            action = statement["Action"]
            for pattern in [action] if isinstance(action, str) else action:
                if "*" in pattern or any(fnmatchcase(op, pattern) for op in FORBIDDEN_ACTIONS):
                    bad.append((logical_id, pattern))
            target = statement["Resource"]
            if not isinstance(target, dict):  # a literal ARN, "*" or a list of them
                bad.append((logical_id, str(target)))
    assert bad == []


def test_key_rotation_is_wired_to_the_secret(template: dict[str, Any]) -> None:
    schedules = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::SecretsManager::RotationSchedule"
    ]
    assert len(schedules) == 1
    schedule = schedules[0]["Properties"]
    assert schedule["SecretId"] == {"Ref": "KeysSecret"}
    assert schedule["RotationLambdaARN"] == {"Fn::GetAtt": ["KeyRotationFunction", "Arn"]}
    assert schedule["RotateImmediatelyOnUpdate"] is True
    assert schedule["RotationRules"]["ScheduleExpression"] == "rate(30 days)"
    permissions = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Permission"
        and r["Properties"]["FunctionName"] == {"Fn::GetAtt": ["KeyRotationFunction", "Arn"]}
    ]
    assert [(p["Principal"], p["Action"]) for p in permissions] == [
        ("secretsmanager.amazonaws.com", "lambda:InvokeFunction")
    ]


# ---------------------------------------------------------------- the code asks for what is granted

# A transaction is authorised per item, each as its own action.
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


class Recorder:
    """Per function, the (IAM action, template resource) pairs its code asks AWS for, recorded at the
    boto3 boundary (botocore's before-parameter-build event: the call as our code makes it)."""

    def __init__(self) -> None:
        from tests.conftest import SECRET as SECRET_NAME
        from tests.support.aws import JWKS_SECRET

        self.function = ""
        self.secrets = {SECRET_NAME: "KeysSecret", JWKS_SECRET: "KeysPublicSecret"}
        self.used: dict[str, set[tuple[str, str]]] = defaultdict(set)

    def dynamodb(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems":
            for item in params.get("TransactItems", []):
                for kind in item:
                    self.used[self.function].add((TRANSACT_ITEM_ACTIONS[kind], "Table"))
        elif model.name == "TransactGetItems":
            self.used[self.function].add(("dynamodb:GetItem", "Table"))
        elif params.get("IndexName"):
            self.used[self.function].add((f"dynamodb:{model.name}", f"Table/index/{params['IndexName']}"))
        else:
            self.used[self.function].add((f"dynamodb:{model.name}", "Table"))

    def secretsmanager(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        secret = str(params.get("SecretId"))
        self.used[self.function].add((f"secretsmanager:{model.name}", self.secrets.get(secret, secret)))

    def watch(self, function: str, dynamodb: Any | None, secretsmanager: Any | None) -> None:
        self.function = function
        if dynamodb is not None:
            dynamodb.meta.events.register("before-parameter-build.dynamodb", self.dynamodb)
        if secretsmanager is not None:
            secretsmanager.meta.events.register("before-parameter-build.secrets-manager", self.secretsmanager)

    def eventbridge(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        for entry in params.get("Entries", []):  # "default": the template's bus when EventBusName is empty
            bus = str(entry.get("EventBusName", "default"))
            self.used[self.function].add((f"events:{model.name}", "EventBus" if bus == "default" else bus))

    @contextlib.contextmanager
    def watching_events(self, function: str, client: Any) -> Iterator[None]:
        self.function = function
        client.meta.events.register("before-parameter-build.eventbridge", self.eventbridge)
        try:
            yield
        finally:
            client.meta.events.unregister("before-parameter-build.eventbridge", self.eventbridge)


def test_what_the_code_calls_is_what_the_template_grants(
    template: dict[str, Any], specs: dict[str, FunctionSpec], account: Any
) -> None:
    """Every function, through its routes (and the rotation function through its four steps), asks
    AWS for exactly the actions template.yaml grants it: not one more (it would fail on AWS, where
    moto does not check), not one fewer (it would be more privilege than the code uses)."""
    from authcore import runtime
    from local import lambda_host
    from tests.conftest import SECRET as SECRET_NAME
    from tests.conftest import Api

    by_dir = {Path(spec.code_uri).name: logical_id for logical_id, spec in specs.items()}
    recorder = Recorder()

    class RecordingApi(Api):
        def send(self, event: dict[str, Any]) -> Any:
            function = routes.BY_KEY[event["routeKey"]].function
            runtime.reset()  # a cold execution environment: nothing read by another function is cached
            recorder.watch(by_dir[function], runtime.store().client, runtime._secrets_provider().client)
            return super().send(event)

    api = RecordingApi()
    signed = api.signed_in(account)  # device authorization, verification (POST), product exchange
    started = api.device_code()
    shown = api.call(
        "GET", "/oauth/device/verify", query={"user_code": started["user_code"]}, claims=account.user
    )
    assert shown.status == 200, shown.text
    assert api.approve(started["user_code"], account.user).status == 200
    device = "urn:ietf:params:oauth:grant-type:device_code"
    form = {"grant_type": device, "device_code": started["device_code"], "client_id": "demo-cli"}
    oauth = api.call("POST", "/oauth/token", form=form)
    assert oauth.status == 200, oauth.text
    form = {
        "grant_type": "refresh_token",
        "refresh_token": oauth.json()["refresh_token"],
        "client_id": "demo-cli",
    }
    assert api.call("POST", "/oauth/token", form=form).status == 200
    refreshed = api.call("POST", "/auth/refresh", body={"refresh_token": signed["refresh_token"]})
    assert refreshed.status == 200, refreshed.text
    backend = {"client_id": "backend", "client_secret": account.confidential_secret}
    introspected = api.call(
        "POST", "/oauth/introspect", form={"token": refreshed.json()["access_token"], **backend}
    )
    assert introspected.status == 200 and introspected.json()["active"] is True, introspected.text
    revoked = api.call(
        "POST", "/oauth/revoke", form={"token": oauth.json()["access_token"], "client_id": "demo-cli"}
    )
    assert revoked.status == 200, revoked.text
    logout = api.call("POST", "/auth/logout", body={"refresh_token": refreshed.json()["refresh_token"]})
    assert logout.status == 200, logout.text
    assert api.call("GET", "/.well-known/oauth-authorization-server").status == 200
    assert api.call("GET", "/.well-known/jwks.json").status == 200
    assert api.call("GET", "/device").status == 200
    api.signed_in(account)  # a live session (the flows above have ended theirs)
    listed = api.call("GET", "/auth/sessions", claims=account.user)
    assert listed.status == 200 and listed.json()["sessions"], listed.text
    ended = api.call("DELETE", f"/auth/sessions/{listed.json()['sessions'][0]['id']}", claims=account.user)
    assert ended.status == 200, ended.text
    assert api.call("POST", "/auth/sessions/revoke-all", claims=account.user).status == 200

    rotation = lambda_host.load_function("functions/key_rotation")
    rotation_client = sys.modules[rotation.__module__]._sm  # the function's own, for its whole life
    recorder.watch("KeyRotationFunction", None, rotation_client)
    token = str(uuid.uuid4())
    try:
        with recorder.watching_events("KeyRotationFunction", sys.modules[rotation.__module__]._events):
            for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
                event = {"SecretId": SECRET_NAME, "ClientRequestToken": token, "Step": step}
                rotation(event, lambda_host.LambdaContext())
    finally:
        rotation_client.meta.events.unregister(
            "before-parameter-build.secrets-manager", recorder.secretsmanager
        )

    # The security events function, given the stream record of a real change (a client registered).
    from tests.conftest import TABLE
    from tests.support.aws import raw_item

    stream = lambda_host.load_function("functions/security_events")
    client_item = raw_item(TABLE, "CLIENT#demo-cli", "CLIENT")
    change = {"Keys": {"pk": {"S": "CLIENT#demo-cli"}, "sk": {"S": "CLIENT"}}, "NewImage": client_item}
    record = {"eventID": "1", "eventName": "INSERT", "dynamodb": {**change, "SequenceNumber": "1"}}
    with recorder.watching_events("SecurityEventsFunction", sys.modules[stream.__module__]._events()):
        answer = stream({"Records": [record]}, lambda_host.LambdaContext())
    assert answer == {"batchItemFailures": []}

    targets: dict[str, dict[str, Any]] = {
        "Table": TABLE_REF,
        "KeysSecret": KEYS_REF,
        "KeysPublicSecret": PUBLIC_KEYS_REF,
        "EventBus": EVENT_BUS_REF,
        "Table/index/ByUser": USER_INDEX_REF,
    }
    for logical_id in specs:
        grants = {
            (a, name) for name, target in targets.items() for a in granted(template, logical_id, target)
        }
        assert recorder.used[logical_id] == grants, logical_id


# ---------------------------------------------------------------- SAM CLI


def sam(*args: str, cwd: Path = ROOT, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    if not SAM.is_file():
        pytest.skip(f"SAM CLI not installed at {SAM.relative_to(ROOT)}: run `make .tools/sam/bin/sam`")
    env = dict(os.environ)
    # `sam build` looks up python3.13 on PATH; the SAM venv's own comes first (a pyenv shim may not work).
    env["PATH"] = f"{SAM.parent}{os.pathsep}{env.get('PATH', '')}"
    env["SAM_CLI_TELEMETRY"] = "0"
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return subprocess.run(
        [str(SAM), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_sam_validate_lint_passes() -> None:
    result = sam("validate", "--lint", "--template", str(TEMPLATE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


@pytest.mark.slow
def test_sam_build_succeeds_without_a_container(tmp_path: Path, specs: dict[str, FunctionSpec]) -> None:
    build = tmp_path / "build"
    result = sam("build", "--template", str(TEMPLATE), "--build-dir", str(build))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    layer = build / "SharedLayer" / "python"
    assert (layer / "authcore" / "__init__.py").is_file()
    # Dependencies were resolved for the Lambda platform (arm64), not for this machine.
    assert list((layer / "pydantic_core").glob("*aarch64-linux-gnu.so"))
    for logical_id in specs:
        assert (build / logical_id / "app.py").is_file(), logical_id


# ---------------------------------------------------------------- route throttles: a safety net


def test_route_throttles_are_a_safety_net_sized_from_the_quotas(template: dict[str, Any]) -> None:
    """docs/capacity.md: every route's default throttle together stays under 80% of API Gateway's 10,000
    requests/s account quota, and polling and refreshing (the token routes) never share the small bucket
    of the routes that start sign-ins (20 requests/s on /oauth/token used to bind before any quota)."""
    api = resource(template, "HttpApi")["Properties"]
    default = int(resolve_default(template, api["DefaultRouteSettings"]["ThrottlingRateLimit"]))
    settings = api["RouteSettings"]
    rates = {
        r.key: int(resolve_default(template, settings.get(r.key, {}).get("ThrottlingRateLimit", default)))
        for r in routes.DOCUMENTED
    }
    assert sum(rates.values()) <= 0.8 * 10_000, rates
    token_routes = ("POST /oauth/token", "POST /auth/device/exchange", "POST /auth/refresh")
    for key in token_routes:
        assert settings[key]["ThrottlingRateLimit"] == {"Ref": "TokenRouteRateLimit"}, key
        assert rates[key] >= 1000, key  # ~1,000 CLIs polling every 5 s must not fill it
    assert min(rates[k] for k in token_routes) > max(v for k, v in rates.items() if k not in token_routes)
    assert set(settings) <= set(rates), "a route setting for a route that does not exist"
