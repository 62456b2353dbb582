"""SnapStart: the template parameter, what SAM makes of it either way, and the runtime hooks.

`SnapStart=PublishedVersions` publishes every function's versions behind the alias `live` (which the API
and the stream then invoke) with SnapStart on; `None` (the default) leaves the template as it was. The
hooks (`authcore.runtime.prime` before the snapshot, `after_restore` after each restore) are tested by
calling them, as Lambda's runtime would, and looking at what they leave behind.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from authcore import runtime
from local.template import load_template
from tests.conftest import Api
from tests.integration.test_template import SAM, sam
from tests.support import aws

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
FUNCTIONS = (
    "DeviceAuthorizationFunction",
    "DeviceVerificationFunction",
    "DeviceExchangeFunction",
    "TokenFunction",
    "RefreshFunction",
    "SessionsFunction",
    "RevocationFunction",
    "DiscoveryFunction",
    "WebFunction",
    "KeyRotationFunction",
    "SecurityEventsFunction",
)


def with_snapstart(tmp_path: Path) -> Path:
    """A copy of the template whose SnapStart parameter defaults to PublishedVersions (`sam validate`
    checks a template as it is, with its defaults; test_operations.py does the same)."""
    text, count = re.subn(
        r'(\n  SnapStart:\n    Type: String\n    Default: )"None"',
        r'\1"PublishedVersions"',
        TEMPLATE.read_text(),
    )
    assert count == 1
    variant = tmp_path / "template.yaml"
    variant.write_text(text)
    return variant


# ---------------------------------------------------------------- the template


def test_the_parameter_is_off_by_default_and_switches_every_function() -> None:
    template = load_template(TEMPLATE)
    parameter = template["Parameters"]["SnapStart"]
    assert parameter["Default"] == "None" and parameter["AllowedValues"] == ["None", "PublishedVersions"]
    assert template["Conditions"]["SnapStartOn"] == {
        "Fn::Equals": [{"Ref": "SnapStart"}, "PublishedVersions"]
    }
    assert template["Globals"]["Function"]["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
    # SAM takes only a literal alias name: the language extensions resolve the condition before it
    assert template["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]
    for name in FUNCTIONS:
        props = template["Resources"][name]["Properties"]
        assert props["AutoPublishAlias"] == {"Fn::If": ["SnapStartOn", "live", {"Ref": "AWS::NoValue"}]}, name
        assert props["AutoPublishAliasAllProperties"] is True, name  # a new layer is a new version
        # a replaced version is deleted: one cached (and billed) snapshot per function
        assert props["VersionDeletionPolicy"] == {
            "Fn::If": ["SnapStartOn", "Delete", {"Ref": "AWS::NoValue"}]
        }
    assert template["Resources"]["SharedLayer"]["Properties"]["PublishLambdaVersion"] is True


@pytest.mark.parametrize("snapstart", ["None", "PublishedVersions"])
def test_sam_validates_with_snapstart_off_and_on(tmp_path: Path, snapstart: str) -> None:
    """`--lint` (cfn-lint) and the SAM translation itself, after the language extensions (SAM CLI's
    `--language-extensions`, as CloudFormation runs them before the SAM transform)."""
    template = TEMPLATE if snapstart == "None" else with_snapstart(tmp_path)
    for args in (["--lint"], ["--language-extensions"]):
        result = sam("validate", *args, "--template", str(template))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "is a valid SAM Template" in result.stdout + result.stderr


# What SAM makes of the template (its own translator, in the SAM CLI's environment): the alias, the
# versions and where the API and the stream send their invocations.
TRANSLATE = r"""
import json, re, sys
from samcli.lib.cfn_language_extensions.sam_integration import expand_language_extensions
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

text = open(sys.argv[1]).read()
text = re.sub(r"CodeUri: functions/([a-z_]+)/", r"CodeUri: s3://bucket/\1", text)  # as `sam package` does
text = text.replace("ContentUri: layers/", "ContentUri: s3://bucket/layer")
template = expand_language_extensions(yaml_parse(text), parameter_values={}, enabled=True).expanded_template

class NoManagedPolicies:
    def load(self):
        return {}

resources = transform(template, {}, NoManagedPolicies())["Resources"]
uris = []
for resource in resources.values():
    if resource["Type"] == "AWS::ApiGatewayV2::Api":
        for methods in resource["Properties"]["Body"]["paths"].values():
            for operation in methods.values():
                uris.append(operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"])
json.dump({
    "types": {name: r["Type"] for name, r in resources.items()},
    "snapstart": {name: r["Properties"].get("SnapStart") for name, r in resources.items()
                  if r["Type"] == "AWS::Lambda::Function"},
    "uris": uris,
    "mappings": [r["Properties"]["FunctionName"] for r in resources.values()
                 if r["Type"] == "AWS::Lambda::EventSourceMapping"],
    "deletion": {name: r.get("DeletionPolicy") for name, r in resources.items()
                 if r["Type"] == "AWS::Lambda::Version"},
}, sys.stdout)
"""


def translated(template: Path) -> dict[str, Any]:
    python = SAM.parent / "python"
    if not python.is_file():
        pytest.skip(f"SAM CLI not installed at {SAM.relative_to(ROOT)}: run `make .tools/sam/bin/sam`")
    done = subprocess.run(
        [str(python), "-c", TRANSLATE, str(template)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_off_the_api_invokes_the_functions_and_nothing_is_published() -> None:
    out = translated(TEMPLATE)
    assert not [t for t in out["types"].values() if t in ("AWS::Lambda::Alias", "AWS::Lambda::Version")]
    assert all(s == {"ApplyOn": {"Ref": "SnapStart"}} for s in out["snapstart"].values())  # i.e. None
    assert out["uris"] and all(".Arn}" in uri for uri in out["uris"]), out["uris"]


def test_on_every_function_has_the_alias_and_the_api_and_the_stream_invoke_it(tmp_path: Path) -> None:
    out = translated(with_snapstart(tmp_path))
    for name in FUNCTIONS:
        assert out["types"][f"{name}Aliaslive"] == "AWS::Lambda::Alias", name
        assert any(
            k.startswith(f"{name}Version") and t == "AWS::Lambda::Version" for k, t in out["types"].items()
        )
    assert out["uris"] and all(re.search(r"\$\{\w+Aliaslive\}", uri) for uri in out["uris"]), out["uris"]
    assert out["mappings"] == [{"Ref": "SecurityEventsFunctionAliaslive"}]
    assert len(out["deletion"]) == len(FUNCTIONS) and set(out["deletion"].values()) == {"Delete"}


# ---------------------------------------------------------------- the hooks


class Hooks:
    """Stands in for snapshot_restore_py: records what is registered."""

    def __init__(self) -> None:
        self.before: list[Any] = []
        self.after: list[Any] = []

    def register_before_snapshot(self, hook: Any) -> None:
        self.before.append(hook)

    def register_after_restore(self, hook: Any) -> None:
        self.after.append(hook)


def test_the_hooks_are_registered_with_lambdas_library() -> None:
    hooks = Hooks()
    runtime.register_snapstart_hooks(hooks)
    assert hooks.before == [runtime.prime] and hooks.after == [runtime.after_restore]


PRIME = r"""
import sys
import boto3
calls = []
boto3.setup_default_session()
boto3.DEFAULT_SESSION._session.get_component("event_emitter").register(
    "before-call", lambda model, **_: calls.append(model.name))
from authcore import envelopes, runtime
imported_before = "jwt" in sys.modules
runtime.prime()
print(imported_before, "jwt" in sys.modules, sorted(runtime._state), calls,
      envelopes.ProductTokenResponse.__pydantic_complete__)
"""


def test_prime_builds_what_the_first_request_would_without_calling_aws(env: dict[str, str]) -> None:
    """In a fresh process, as before a snapshot: the clients, the settings, the client registry and the
    identity verifier built, pyjwt imported and the envelopes' validators built; nothing fetched (the
    key set is fetched by a request, and dropped on restore)."""
    done = subprocess.run(
        [sys.executable, "-c", PRIME],
        env={**env, "PYTHONPATH": str(ROOT / "layers"), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "False True ['clients', 'identity', 'secrets', 'store'] [] True"


def test_after_restore_drops_what_environments_must_not_share(
    api: Api, account: aws.Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm environment (a request served: key set, client registry, secrets and identity caches
    built), then a restore: each cache is gone and built anew by the next request; the AWS clients stay."""
    monkeypatch.setenv("CLIENT_CACHE_SECONDS", "60")  # as deployed: client records cached a minute
    runtime.reset()
    started = api.device_code()
    approved = api.approve(started["user_code"], account.user)
    assert approved.status == 200, approved.text
    assert api.exchange(started["device_code"]).status == 200
    before = dict(runtime._state)
    assert {"keyset", "clients", "secrets", "identity", "store"} <= set(before)
    registry = runtime.clients()
    assert registry._cache  # the client record, cached (CLIENT_CACHE_SECONDS would keep it)

    random.seed(1234)
    runtime.after_restore()

    assert not {"keyset", "jwks", "clients", "secrets", "identity"} & set(runtime._state)
    assert runtime._state["store"] is before["store"]  # the client is kept: only its connections go
    assert random.random() != random.Random(1234).random()  # reseeded, not the snapshot's sequence
    assert runtime.clients() is not registry and not runtime.clients()._cache
    assert runtime.identity() is not before["identity"]
    assert runtime._secrets_provider() is not before["secrets"]
    assert runtime.keyset().signing_kid == before["keyset"][1].signing_kid  # fetched again, the same set


def test_after_restore_closes_the_connections_the_clients_hold(env: dict[str, str]) -> None:
    """Against a real endpoint (a moto server): a connection opened before the snapshot is not reused
    after a restore (it may be dead, or shared by every environment restored from the snapshot)."""
    from local.moto_server import MotoServer

    with MotoServer() as url:
        import os

        os.environ["AWS_ENDPOINT_URL"] = url
        try:
            aws.create_table(env["TABLE_NAME"], endpoint_url=url)
            runtime.reset()
            store = runtime.store()
            store.get_client("demo-cli")  # a request: a connection pool for the endpoint
            pools = store.client._endpoint.http_session._manager.pools
            assert len(pools) == 1
            runtime.after_restore()
            assert runtime.store() is store and len(pools) == 0
            assert store.get_client("demo-cli") is None  # and the client works on, with a new connection
        finally:
            del os.environ["AWS_ENDPOINT_URL"]
            runtime.reset()


SECURITY_EVENTS = r"""
import importlib.util, json, sys, types
before, after = [], []
fake = types.ModuleType("snapshot_restore_py")  # Lambda's hooks library, as its managed runtimes have it
fake.register_before_snapshot = before.append
fake.register_after_restore = after.append
sys.modules["snapshot_restore_py"] = fake
import boto3
calls = []
boto3.setup_default_session()
boto3.DEFAULT_SESSION._session.get_component("event_emitter").register(
    "before-call", lambda model, **_: calls.append(model.name))
spec = importlib.util.spec_from_file_location("security_events_app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
built_at_import = app._events.cache_info().currsize
for hook in reversed(before):  # as Lambda runs them: before the snapshot in reverse order of registration
    hook()
events = app._events()
primed = {"import": built_at_import, "calls_before_snapshot": list(calls),
          "before": [h.__name__ for h in before], "after": [h.__name__ for h in after]}
events.list_event_buses()  # a request: a connection pool for the endpoint
pools = events._endpoint.http_session._manager.pools
open_before = len(pools)
for hook in after:  # after a restore, in order of registration
    hook()
primed |= {"pools": [open_before, len(pools)], "same_client": app._events() is events}
events.list_event_buses()  # the client works on, with a new connection
print(json.dumps(primed))
"""


def test_the_security_events_function_primes_and_restores_its_own_client(env: dict[str, str]) -> None:
    """With Lambda's hooks library present: the EventBridge client (which the function builds on first
    use) is built before the snapshot, with no request to AWS, and after a restore it keeps the client
    but closes the connections it held."""
    from local.moto_server import MotoServer

    with MotoServer() as url:
        done = subprocess.run(
            [sys.executable, "-c", SECURITY_EVENTS, str(ROOT / "functions/security_events/app.py")],
            env={**env, "PYTHONPATH": str(ROOT / "layers"), "AWS_ENDPOINT_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {
        "import": 0,
        "calls_before_snapshot": [],
        "before": ["prime", "_prime"],
        "after": ["after_restore", "_after_restore"],
        "pools": [1, 0],
        "same_client": True,
    }, out


def test_on_snapstart_registers_a_functions_own_hooks_beside_the_layers() -> None:
    hooks = Hooks()
    runtime.on_snapstart(before=print, after=repr, hooks=hooks)
    assert hooks.before == [print] and hooks.after == [repr]
    runtime.on_snapstart(before=print, after=repr)  # outside Lambda: no hooks library, nothing to do
