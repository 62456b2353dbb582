"""template.yaml says what the contract and the design say: routes, authorizer, table, least privilege.

The SAM CLI checks (lint, build) run when .tools/sam/bin/sam exists (`make .tools/sam/bin/sam`).
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from local.template import FunctionSpec, Route, functions, load_template, table_spec, ttl_attribute

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAM = ROOT / ".tools" / "sam" / "bin" / "sam"

# The contract's routes, each with the one function that serves it.
ROUTES = {
    ("POST", "/oauth/device/code"): "DeviceAuthorizationFunction",
    ("GET", "/oauth/device/verify"): "DeviceVerificationFunction",
    ("POST", "/oauth/device/verify"): "DeviceVerificationFunction",
    ("POST", "/auth/device/exchange"): "DeviceExchangeFunction",
    ("POST", "/oauth/token"): "TokenFunction",
    ("GET", "/oauth/token"): "TokenFunction",
    ("POST", "/auth/refresh"): "RefreshFunction",
    ("POST", "/auth/logout"): "RefreshFunction",
    ("POST", "/oauth/revoke"): "RevocationFunction",
    ("POST", "/oauth/introspect"): "RevocationFunction",
    ("GET", "/.well-known/oauth-authorization-server"): "DiscoveryFunction",
    ("GET", "/.well-known/jwks.json"): "DiscoveryFunction",
    ("GET", "/device"): "WebFunction",
}
JWT_ROUTES = {("GET", "/oauth/device/verify"), ("POST", "/oauth/device/verify")}

# Least privilege: exactly these actions, on the table and on the key secret, and nothing else.
TABLE_ACTIONS = {
    "DeviceAuthorizationFunction": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem"},
    "DeviceVerificationFunction": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
    "DeviceExchangeFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "TokenFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "RefreshFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "RevocationFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    "DiscoveryFunction": set(),
    "WebFunction": set(),
    "KeyRotationFunction": set(),
}
READ_KEYS = {"secretsmanager:GetSecretValue"}
SECRET_ACTIONS = {name: READ_KEYS for name in TABLE_ACTIONS} | {
    "WebFunction": set(),
    "KeyRotationFunction": {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    },
}
FORBIDDEN_ACTIONS = (
    "dynamodb:Scan",
    "dynamodb:DeleteItem",
    "dynamodb:DeleteTable",
    "dynamodb:BatchWriteItem",
)

# The contract's default lifetimes.
LIFETIMES = {
    "DEVICE_CODE_TTL_SECONDS": "900",
    "POLL_INTERVAL_SECONDS": "5",
    "ACCESS_TOKEN_TTL_SECONDS": "3600",
    "REFRESH_TOKEN_TTL_SECONDS": "2592000",
    "ROTATION_GRACE_SECONDS": "10",
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
        {"AttributeName": "sk", "AttributeType": "S"},
    ]
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


def test_only_the_verify_routes_use_the_jwt_authorizer(specs: dict[str, FunctionSpec]) -> None:
    routes: list[Route] = [r for spec in specs.values() for r in spec.routes]
    assert {(r.method, r.path) for r in routes if r.uses_jwt_authorizer} == JWT_ROUTES


def test_jwt_authorizer_reads_the_authorization_header(template: dict[str, Any]) -> None:
    apis = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::HttpApi"]
    assert len(apis) == 1
    auth = apis[0]["Properties"]["Auth"]
    assert "DefaultAuthorizer" not in auth
    (authorizer,) = auth["Authorizers"].values()
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    assert set(authorizer["JwtConfiguration"]) == {"issuer", "audience"}


def test_every_route_uses_payload_format_2(template: dict[str, Any]) -> None:
    versions = {
        (logical_id, name): event["Properties"].get("PayloadFormatVersion")
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
        for name, event in r["Properties"].get("Events", {}).items()
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
def test_function_grants_only_what_it_uses(template: dict[str, Any], logical_id: str) -> None:
    table = {"Fn::GetAtt": ["Table", "Arn"]}
    secret = {"Ref": "KeysSecret"}
    every = statements(template, logical_id)
    assert all(s["Effect"] == "Allow" for s in every)
    assert all(s["Resource"] in (table, secret) for s in every), "a statement on another resource"
    assert granted(template, logical_id, table) == TABLE_ACTIONS[logical_id]
    assert granted(template, logical_id, secret) == SECRET_ACTIONS[logical_id]


def test_no_function_may_scan_delete_or_wildcard(
    template: dict[str, Any], specs: dict[str, FunctionSpec]
) -> None:
    bad = []
    for logical_id in specs:
        for statement in statements(template, logical_id):
            action = statement["Action"]
            for pattern in [action] if isinstance(action, str) else action:
                if "*" in pattern or any(fnmatchcase(op, pattern) for op in FORBIDDEN_ACTIONS):
                    bad.append((logical_id, pattern))
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
