"""The whole API on localhost, on embedded AWS services: what `make serve` runs and the e2e tests use.

    with LocalStack(port=0) as info:          # any free port
        requests.get(f"{info.api_url}/.well-known/oauth-authorization-server")

`LocalStack.start` does, in order:
1. binds the HTTP port (a busy or bad port fails here, before anything else starts: `PortUnavailable`);
2. starts the embedded AWS endpoint (`local.moto_server.MotoServer`, one request at a time);
3. creates what template.yaml describes, from the template itself: the DynamoDB table (its key schema
   and TTL), the secrets (the key set secret gets a fresh key set and the public key set secret its JWKS,
   as the rotation function would write them), and the Cognito user pool and app client (their
   properties as the template sets them);
4. seeds, through `local.admin`, a public client, a confidential client, an organization, and a
   confirmed demo user in the user pool whose `sub` is a member of that organization;
5. starts the functions' execution environments with the template's environment variables resolved to
   these resources: `local.workers.Environments` (processes, one invocation at a time each, every function
   warm in each), or with `runtime="lambda"` the real Lambda runtime (`local.invoke.Runtimes`: the Runtime
   Interface Emulator running awslambdaric, `concurrency` of them per function, each with its function's
   own environment);
6. serves the HTTP API (`local.gateway`): the template's routes, its JWT authorizer and its CORS.

For tests, `LocalStack(clock_file=path)` gives the functions a clock that a test moves
(`advance_clock(seconds)`): each execution environment reads its time as the wall clock plus the offset
in that file (`local.workers.FileClock`). Without `clock_file` (as `make serve` runs) the functions run
on the wall clock, and the layer itself never reads such a file.

The returned `StackInfo` is what `make serve` writes to .local/serve.json (`StackInfo.to_dict`); its
`functions` give each function's code, handler, timeout, memory and resolved environment, which is how
`make invoke` (local.invoke) runs a function exactly as this stack would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "layers") not in sys.path:  # the layer is on the functions' path on Lambda (/opt/python)
    sys.path.append(str(ROOT / "layers"))

from local import template as tpl  # noqa: E402
from local.cfn import NO_VALUE, Resolver  # noqa: E402
from local.gateway import Cors, Gateway, HttpFront, JwtAuthorizer, Router, Target  # noqa: E402

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's, so that ARNs agree
STACK_NAME = "token-service-local"
DEFAULT_INFO_FILE = ROOT / ".local" / "serve.json"

DEMO_USERNAME = "demo@example.com"
DEMO_NAME = "Demo User"
DEMO_PASSWORD = "Demo-Passw0rd-Local"  # meets the template's password policy; local only
DEMO_ORGANIZATION = ("demo-org", "Demo Org")
PUBLIC_CLIENT_ID = "demo-cli"
CONFIDENTIAL_CLIENT_ID = "demo-backend"

# Copied from the parent's environment into the functions' (which otherwise hold only what the
# template and the stack set): enough for a process to run, nothing that could reach real AWS.
PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")
RUNTIMES = ("process", "lambda")  # how the functions run: see LocalStack(runtime=...)

# CloudFormation property -> API parameter, for the Cognito resources (the same name unless listed).
_USER_POOL_PARAMETERS = {
    "UserPoolName": "PoolName",
    "Policies": None,
    "DeletionProtection": None,
    "LambdaConfig": None,
    "AutoVerifiedAttributes": None,
    "AliasAttributes": None,
    "UsernameAttributes": None,
    "SmsVerificationMessage": None,
    "EmailVerificationMessage": None,
    "EmailVerificationSubject": None,
    "VerificationMessageTemplate": None,
    "SmsAuthenticationMessage": None,
    "MfaConfiguration": None,
    "UserAttributeUpdateSettings": None,
    "DeviceConfiguration": None,
    "EmailConfiguration": None,
    "SmsConfiguration": None,
    "UserPoolTags": None,
    "AdminCreateUserConfig": None,
    "Schema": None,
    "UserPoolAddOns": None,
    "UsernameConfiguration": None,
    "AccountRecoverySetting": None,
}
_USER_POOL_CLIENT_PARAMETERS = (
    "ClientName",
    "GenerateSecret",
    "RefreshTokenValidity",
    "AccessTokenValidity",
    "IdTokenValidity",
    "TokenValidityUnits",
    "ReadAttributes",
    "WriteAttributes",
    "ExplicitAuthFlows",
    "SupportedIdentityProviders",
    "CallbackURLs",
    "LogoutURLs",
    "DefaultRedirectURI",
    "AllowedOAuthFlows",
    "AllowedOAuthScopes",
    "AllowedOAuthFlowsUserPoolClient",
    "PreventUserExistenceErrors",
    "EnableTokenRevocation",
    "EnablePropagateAdditionalUserContextData",
    "AuthSessionValidity",
)
_COGNITO_ISSUER = re.compile(r"^https://cognito-idp\.[a-z0-9-]+\.amazonaws\.com/(?P<pool>[^/]+)$")


class _Background(threading.Thread):
    """Runs one call in a thread; `wait` returns its result or raises its exception."""

    def __init__(self, call: Callable[[], Any], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._call = call
        self._result: Any = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._result = self._call()
        except BaseException as exc:
            self._error = exc

    def wait(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._result


class PortUnavailable(OSError):
    """The HTTP API cannot listen where it was asked to (busy port, bad host, no permission)."""


# ---------------------------------------------------------------- what the stack reports


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    organization_id: str
    organization_name: str
    sub: str
    name: str


@dataclass(frozen=True)
class PublicClient:
    client_id: str


@dataclass(frozen=True)
class ConfidentialClient:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Clients:
    public: PublicClient
    confidential: ConfidentialClient


@dataclass(frozen=True)
class StackInfo:
    """Where everything is. Attribute access (`info.demo.username`, `info.clients.public.client_id`);
    `to_dict()` gives the same as nested dicts, as written to .local/serve.json."""

    api_url: str
    aws_endpoint_url: str
    region: str
    user_pool_id: str
    user_pool_client_id: str
    user_pool_issuer: str
    table_name: str
    keys_secret_id: str
    jwks_secret_id: str
    demo: DemoUser
    clients: Clients
    pid: int
    aws_endpoint_pid: int
    # logical id -> {"code_uri", "handler", "timeout", "memory_size", "environment"}: each function as
    # this stack runs it (its environment resolved to the stack's resources; no host variables)
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    runtime: str = "process"
    # the user pool's managed login, locally (local.oidc): where the page signs people in
    sign_in_url: str = ""
    # examples/ served beside the API (local.examples): name -> URL, e.g. resource_server -> .../demo/me
    examples: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- the stack


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Children started here inherit a blocked SIGINT: Ctrl-C in a terminal reaches the whole process
    group, and the stack, not each child, decides the order of shutdown. A Ctrl-C that arrives
    meanwhile is delivered to this process when the block ends."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    # multiprocessing starts its resource tracker with the first process and then unblocks SIGINT
    # (whatever the mask was before): start it now, so that it leaves our mask alone.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class UnknownParameter(ValueError):
    """A parameter override names no parameter of the template."""


class LocalStack:
    """The local stack. `start()` (or `with`) returns its `StackInfo`; `stop()` stops every process it
    started. Not restartable: make a new one."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        concurrency: int = 4,
        allowed_origins: Sequence[str] = (),
        info_file: str | Path | None = None,
        access_log: IO[str] | None = None,
        template_path: str | Path | None = None,
        setup: str | None = None,
        clock_file: str | Path | None = None,
        runtime: str = "process",
        parameters: Mapping[str, str] | None = None,
        examples: bool = False,
    ) -> None:
        """`setup` ("module:function") runs once in each execution environment before any invocation:
        for tests that install a deliberately broken variant to show a test can fail.

        `clock_file` (tests only): the functions' clock is the wall clock plus the seconds that file
        holds (0 when it does not exist); `advance_clock` moves it. Only the functions' time moves: the
        gateway's JWT authorizer and the AWS endpoint (Cognito's tokens) stay on the wall clock.

        `runtime`: "process" (worker processes that import every function, `concurrency` in all) or
        "lambda" (the real Lambda runtime, `concurrency` emulators per function: local.invoke). The
        Lambda runtime takes neither `setup` nor `clock_file`: nothing can be injected into it.

        `parameters`: template parameter overrides, as `sam deploy --parameter-overrides` takes them
        (e.g. {"DeviceAuthorizationsPerIp": "0"} for a test that starts hundreds of device flows from
        one address).

        `examples`: also serve examples/ (local.examples: the resource server at /demo/me, the web app
        at /demo/app), as `make serve` does; `serve_examples()` adds them to a running stack."""
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        if runtime == "lambda" and (setup is not None or clock_file is not None):
            raise ValueError("the Lambda runtime takes neither setup nor clock_file")
        self.runtime = runtime
        self.parameter_overrides = dict(parameters or {})
        self.setup = setup
        self.clock_file = Path(clock_file) if clock_file is not None else None
        self.host = host
        self.port = port
        self.concurrency = concurrency
        self.extra_origins = tuple(allowed_origins)
        self.info_file = Path(info_file) if info_file is not None else None
        self.access_log = access_log
        self.template_path = template_path
        self.info: StackInfo | None = None
        self.timings: dict[str, float] = {}
        self._front: HttpFront | None = None
        self._moto: Any = None
        self._login: Any = None  # local.oidc.LocalManagedLogin
        self._environments: Any = None
        self._serving: threading.Thread | None = None
        self._stopped = False
        self.examples = examples
        self._examples: Any = None  # local.examples.Examples
        self._examples_lock = threading.Lock()

    # ------------------------------------------------------------ life cycle

    def __enter__(self) -> StackInfo:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()

    def start(self) -> StackInfo:
        if self._front is not None:
            raise RuntimeError("a LocalStack starts once")
        started = time.monotonic()
        try:
            self._front = self._bind()
            with _sigint_blocked():
                self.info = self._provision(self._front, started)
            self._serving = threading.Thread(
                target=self._front.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="local-http-api",
                daemon=True,
            )
            self._serving.start()
            if self.examples:
                self.serve_examples()
            if self.info_file is not None:
                _write_private_json(self.info_file, self.info.to_dict())
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - started
        return self.info

    def stop(self) -> None:
        """Stop serving, then the execution environments, then the AWS endpoint. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._front is not None:
            if self._serving is not None:
                self._front.shutdown()
            self._front.server_close()
        if self._environments is not None:
            with contextlib.suppress(Exception):
                self._environments.close()
        if self._examples is not None:
            self._examples.close()
        if self._login is not None:
            with contextlib.suppress(Exception):
                self._login.stop()
        if self._moto is not None:
            self._moto.stop()
        if self.info_file is not None and self.info is not None:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(self.info_file.read_text()).get("pid") == os.getpid():
                    self.info_file.unlink()  # it describes a stack that is gone

    def clock_offset(self) -> float:
        """How far ahead of the wall clock the functions' clock is, in seconds (see `clock_file`)."""
        from local.workers import read_clock_offset

        return read_clock_offset(self._clock_file()) if self.clock_file is not None else 0.0

    def advance_clock(self, seconds: float) -> float:
        """Move the functions' clock ``seconds`` ahead (negative: back), at once for every execution
        environment; the new offset from the wall clock. Needs `clock_file`."""
        from local.workers import write_clock_offset

        offset = self.clock_offset() + seconds
        write_clock_offset(self._clock_file(), offset)
        return offset

    def now(self) -> float:
        """The functions' time: what `authcore.clock.now()` reads in them."""
        return time.time() + self.clock_offset()

    def _clock_file(self) -> Path:
        if self.clock_file is None:
            raise RuntimeError("this LocalStack has no clock file: create it with LocalStack(clock_file=...)")
        return self.clock_file

    def pids(self) -> list[int]:
        """The processes this stack started (the AWS endpoint and the execution environments)."""
        pids = []
        if self._moto is not None and self._moto.process is not None:
            pids.append(int(self._moto.process.pid))
        if self._environments is not None:
            if hasattr(self._environments, "pids"):  # the Lambda runtime's emulators
                pids += [int(pid) for pid in self._environments.pids()]
            else:
                pids += [int(process.pid) for process, _ in getattr(self._environments, "_all", [])]
        if self._examples is not None:
            pids += self._examples.pids()
        return pids

    def serve_examples(self) -> dict[str, str]:
        """Serve examples/ beside the API (once; again: the same): their routes join the gateway's, their
        functions run in environments of their own (local.examples). Name -> URL."""
        from local import examples

        with self._examples_lock:
            if self._examples is not None:
                return dict(self._examples.urls)
            if self.info is None or self._front is None or self._front.gateway is None:
                raise RuntimeError("start the stack before serving the examples")
            info = self.info
            import boto3

            from authcore.store import Store

            ddb = boto3.client(
                "dynamodb",
                endpoint_url=info.aws_endpoint_url,
                region_name=info.region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            examples.register_web_client(Store(ddb, info.table_name))
            audience = next(
                (f["environment"].get("ACCESS_TOKEN_AUDIENCE", "") for f in info.functions.values()), ""
            )
            served = examples.start(
                info.api_url,
                local_aws_environment(info.aws_endpoint_url),
                audience=audience,
                passthrough={k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ},
            )
            gateway = self._front.gateway
            kept = [*gateway.router.targets, *([gateway.router.default] if gateway.router.default else [])]
            self._front.gateway = dataclasses.replace(gateway, router=Router([*kept, *served.targets]))
            self._examples = served
            self.info = dataclasses.replace(
                info, functions={**info.functions, **served.functions}, examples=dict(served.urls)
            )
            return dict(served.urls)

    # ------------------------------------------------------------ steps

    def _bind(self) -> HttpFront:
        try:
            return HttpFront(self.host, self.port, log=self.access_log)
        except OverflowError:
            raise PortUnavailable(f"port {self.port} is not a valid port (0-65535)") from None
        except OSError as exc:
            import errno

            where = f"{self.host}:{self.port}"
            if exc.errno == errno.EADDRINUSE:
                raise PortUnavailable(f"port {self.port} is already in use on {self.host}") from None
            if exc.errno == errno.EACCES:
                raise PortUnavailable(f"no permission to listen on {where}") from None
            raise PortUnavailable(f"cannot listen on {where}: {exc.strerror or exc}") from None

    def _provision(self, front: HttpFront, started: float) -> StackInfo:
        from local.moto_server import MotoServer

        host = str(front.server_address[0])
        wildcard = host in ("0.0.0.0", "", "::")  # noqa: S104 - a comparison: show a loopback URL
        shown_host = ("::1" if host == "::" else "127.0.0.1") if wildcard else host
        shown_host = f"[{shown_host}]" if ":" in shown_host else shown_host
        api_url = f"http://{shown_host}:{front.port}"

        # The AWS endpoint takes a second to start: import what provisioning needs meanwhile.
        self._moto = MotoServer()
        booting = _Background(self._moto.start, "aws-endpoint")
        try:
            import boto3

            from authcore import keyrotation
            from authcore.store import Store
            from authcore.tokens import KeySet
            from local import admin
        finally:
            endpoint = str(booting.wait())
        self._mark("aws endpoint", started)

        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        template = tpl.load_template(self.template_path)
        origins = [api_url, *self._loopback_aliases(api_url), *self.extra_origins]
        parameters = {
            "Issuer": api_url,
            "VerificationUri": f"{api_url}/device",
            "AllowedOrigins": ",".join(dict.fromkeys(o.rstrip("/") for o in origins)),
            "DeletionProtection": "false",
            **self.parameter_overrides,
        }
        declared = template.get("Parameters") or {}
        unknown = sorted(set(self.parameter_overrides) - set(declared))
        if unknown:
            raise UnknownParameter(f"the template has no parameter {', '.join(unknown)}")
        resolver = Resolver(
            template,
            parameters={k: v for k, v in parameters.items() if k in declared},
            region=REGION,
            account_id=ACCOUNT_ID,
            stack_name=STACK_NAME,
        )

        # Identity: the user pool and its app client, as the template defines them.
        idp = session.client("cognito-idp", endpoint_url=endpoint)
        pool_id, pool_client_id = self._user_pool(idp, template, resolver)
        issuer = f"https://cognito-idp.{REGION}.amazonaws.com/{pool_id}"
        resolver.attributes[("UserPool", "ProviderURL")] = issuer
        # Its managed login, where the page signs people in (local.oidc: same issuer, same people).
        from local.oidc import LocalManagedLogin

        self._login = LocalManagedLogin(
            issuer=issuer,
            client_id=pool_client_id,
            redirect_uris=[f"{origin}/device" for origin in (api_url, *self._loopback_aliases(api_url))],
            cognito=idp,
            pool_id=pool_id,
            upstream_jwks_url=f"{endpoint}/{pool_id}/.well-known/jwks.json",
        )
        self._login.start()
        for logical_id, resource in template["Resources"].items():
            if isinstance(resource, dict) and resource.get("Type") == "AWS::Cognito::UserPoolDomain":
                resolver.refs[logical_id] = f"{STACK_NAME}-login"  # stands for the managed login's prefix

        # Every name the functions' environment refers to, then the functions start (they take the
        # longest) while the table is created and seeded.
        table_name = f"{STACK_NAME}-table"
        table_logical_id = self._logical_id(template, tpl.TABLE_TYPE)
        resolver.refs[table_logical_id] = table_name
        resolver.attributes[(table_logical_id, "Arn")] = (
            f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table_name}"
        )
        sm = session.client("secretsmanager", endpoint_url=endpoint)
        self._secrets(sm, template, resolver)
        resolver.refs["HttpApi"] = "local"
        for logical_id, resource in template["Resources"].items():  # the access log: the gateway's lines
            if isinstance(resource, dict) and resource.get("Type") == "AWS::Logs::LogGroup":
                resolver.refs[logical_id] = f"/local/{logical_id}"
                resolver.attributes[(logical_id, "Arn")] = (
                    f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/local/{logical_id}"
                )
        per_function = function_environments(template, resolver, endpoint)
        for variables in per_function.values():
            if variables.get("AUTH_ISSUER") == issuer:  # on AWS the issuer's discovery document says where
                # the pool's keys (moto's tokens) and the managed login's (the page's tokens)
                variables["AUTH_JWKS_URI"] = self._login.jwks_uri
            if variables.get("USER_POOL_ID") == pool_id and not variables.get("SIGN_IN_ISSUER"):
                variables.update(self._login.page_environment())  # the page signs in there
        environment = self._function_environment(per_function)
        keys_secret_id, jwks_secret_id = (self._secret_id(environment, n) for n in ("KEYS", "JWKS"))
        targets = self._targets(template, resolver)
        functions = self._functions(template, resolver, per_function)
        starting = _Background(lambda: self._start_environments(environment, targets, functions), "functions")
        try:
            ddb = session.client("dynamodb", endpoint_url=endpoint)
            ddb.create_table(TableName=table_name, **tpl.table_spec(template, table_logical_id))
            ttl = tpl.ttl_attribute(template, table_logical_id)
            if ttl:
                ddb.update_time_to_live(
                    TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
                )
            access_ttl = int(environment.get("ACCESS_TOKEN_TTL_SECONDS", "3600"))
            keys = KeySet.parse(keyrotation.rotate_now(sm, keys_secret_id, access_ttl, jwks_secret_id))
            self._mark("resources", started)
            # Seed data, through the operator's own commands.
            store = Store(ddb, table_name)
            public = admin.create_client(
                store, name="Demo CLI", client_type="public", grant_types=["device_code", "refresh_token"],
                scopes=["read", "write"], client_id=PUBLIC_CLIENT_ID,
            )  # fmt: skip
            confidential = admin.create_client(
                store, name="Demo backend", client_type="confidential",
                grant_types=["device_code", "refresh_token"], scopes=["read", "write"],
                client_id=CONFIDENTIAL_CLIENT_ID, hmac=keys.hmac, introspection=True,
            )  # fmt: skip
            org_id, org_name = DEMO_ORGANIZATION
            admin.create_organization(store, org_name, org_id)
            sub = self._demo_user(idp, pool_id)
            admin.add_member(store, sub, org_id, "owner")
            self._mark("seed", started)
        finally:
            self._environments = starting.wait()
        self._mark("functions", started)

        # The HTTP API in front of the functions.
        authorizer = self._authorizer(template, resolver, endpoint)
        if authorizer is not None:
            authorizer.load_keys()
        front.gateway = Gateway(
            router=Router(targets),
            invoke=self._invoke,
            authorizer=authorizer,
            cors=self._cors(template, resolver),
            default_domain=api_url.split("//", 1)[1],
        )
        return StackInfo(
            api_url=api_url,
            aws_endpoint_url=endpoint,
            region=REGION,
            user_pool_id=pool_id,
            user_pool_client_id=pool_client_id,
            user_pool_issuer=issuer,
            table_name=table_name,
            keys_secret_id=keys_secret_id,
            jwks_secret_id=jwks_secret_id,
            demo=DemoUser(DEMO_USERNAME, DEMO_PASSWORD, org_id, org_name, sub, DEMO_NAME),
            clients=Clients(
                PublicClient(str(public["client_id"])),
                ConfidentialClient(str(confidential["client_id"]), str(confidential["client_secret"])),
            ),
            pid=os.getpid(),
            aws_endpoint_pid=int(self._moto.process.pid),
            functions=functions,
            runtime=self.runtime,
            sign_in_url=self._login.url,
        )

    def _mark(self, step: str, started: float) -> None:
        self.timings[step] = time.monotonic() - started

    @staticmethod
    def _loopback_aliases(api_url: str) -> list[str]:
        """http://localhost:PORT for http://127.0.0.1:PORT (and back): a browser may use either."""
        if "//127.0.0.1:" in api_url:
            return [api_url.replace("//127.0.0.1:", "//localhost:")]
        if "//localhost:" in api_url:
            return [api_url.replace("//localhost:", "//127.0.0.1:")]
        return []

    @staticmethod
    def _logical_id(template: dict[str, Any], resource_type: str) -> str:
        found = [
            k
            for k, v in template["Resources"].items()
            if isinstance(v, dict) and v.get("Type") == resource_type
        ]
        if len(found) != 1:
            raise tpl.TemplateError(
                f"the local stack expects one {resource_type} in template.yaml, found {found}"
            )
        return str(found[0])

    @staticmethod
    def _secrets(sm: Any, template: dict[str, Any], resolver: Resolver) -> None:
        """Every secret of the template, with the value the template gives it (a placeholder)."""
        for logical_id, resource in template["Resources"].items():
            if not isinstance(resource, dict) or resource.get("Type") != "AWS::SecretsManager::Secret":
                continue
            if not resolver.resource_enabled(logical_id):
                continue
            value = resolver.resolve(resource.get("Properties", {})).get("SecretString", "{}")
            created = sm.create_secret(Name=f"{STACK_NAME}/{logical_id}", SecretString=str(value))
            resolver.refs[logical_id] = str(created["ARN"])  # !Ref of a secret is its ARN

    @staticmethod
    def _secret_id(environment: dict[str, str], kind: str) -> str:
        """The secret the functions find under <KIND>_SECRET_ID: the key set, or its public half."""
        value = environment.get(f"{kind}_SECRET_ID", "")
        if not value.startswith("arn:"):
            raise tpl.TemplateError(f"no function's {kind}_SECRET_ID is !Ref to a secret of template.yaml")
        return value

    def _user_pool(self, idp: Any, template: dict[str, Any], resolver: Resolver) -> tuple[str, str]:
        pool_logical_id = self._logical_id(template, "AWS::Cognito::UserPool")
        client_logical_id = self._logical_id(template, "AWS::Cognito::UserPoolClient")
        properties = resolver.resolve(template["Resources"][pool_logical_id].get("Properties", {}))
        arguments = {
            (_USER_POOL_PARAMETERS[k] or k): v for k, v in properties.items() if k in _USER_POOL_PARAMETERS
        }
        arguments.setdefault("PoolName", f"{STACK_NAME}-users")
        pool = idp.create_user_pool(**arguments)["UserPool"]
        resolver.refs[pool_logical_id] = pool["Id"]
        resolver.attributes[(pool_logical_id, "Arn")] = pool["Arn"]
        client_properties = resolver.resolve(template["Resources"][client_logical_id].get("Properties", {}))
        client_arguments = {k: v for k, v in client_properties.items() if k in _USER_POOL_CLIENT_PARAMETERS}
        client_arguments.setdefault("ClientName", f"{STACK_NAME}-web")
        client = idp.create_user_pool_client(UserPoolId=pool["Id"], **client_arguments)["UserPoolClient"]
        resolver.refs[client_logical_id] = client["ClientId"]
        return str(pool["Id"]), str(client["ClientId"])

    @staticmethod
    def _demo_user(idp: Any, pool_id: str) -> str:
        """A confirmed user with a permanent password; returns its `sub`."""
        user = idp.admin_create_user(
            UserPoolId=pool_id,
            Username=DEMO_USERNAME,
            UserAttributes=[
                {"Name": "email", "Value": DEMO_USERNAME},
                {"Name": "email_verified", "Value": "true"},
                {"Name": "name", "Value": DEMO_NAME},
            ],
            MessageAction="SUPPRESS",
        )["User"]
        idp.admin_set_user_password(
            UserPoolId=pool_id, Username=DEMO_USERNAME, Password=DEMO_PASSWORD, Permanent=True
        )
        return next(str(a["Value"]) for a in user["Attributes"] if a["Name"] == "sub")

    @staticmethod
    def _function_environment(per_function: dict[str, dict[str, str]]) -> dict[str, str]:
        """Every function's variables (`function_environments`) in one environment, with the host's
        PASSTHROUGH_ENV.

        The worker processes (local.workers) are shared by all functions, so they get the union: every
        function's variables are the same Globals plus a few of its own, and two functions that set one
        variable differently are refused rather than silently merged."""
        environment: dict[str, str] = {}
        owner: dict[str, str] = {}
        for logical_id, variables in per_function.items():
            for name, text in variables.items():
                if name in environment and environment[name] != text:
                    raise tpl.TemplateError(
                        f"{logical_id} and {owner[name]} set {name} differently; the local stack "
                        "runs every function with one environment"
                    )
                environment[name], owner[name] = text, logical_id
        for name in PASSTHROUGH_ENV:
            if name in os.environ:
                environment.setdefault(name, os.environ[name])
        return environment

    @staticmethod
    def _functions(
        template: dict[str, Any], resolver: Resolver, per_function: dict[str, dict[str, str]]
    ) -> dict[str, dict[str, Any]]:
        """StackInfo.functions: each enabled function's code, handler, limits and environment."""
        functions: dict[str, dict[str, Any]] = {}
        for spec in tpl.functions(template):
            if spec.logical_id not in per_function:
                continue
            timeout, memory_size = function_limits(template, resolver, spec.logical_id)
            functions[spec.logical_id] = {
                "code_uri": spec.code_uri,
                "handler": spec.handler,
                "timeout": timeout,
                "memory_size": memory_size,
                "environment": dict(per_function[spec.logical_id]),
            }
        return functions

    @staticmethod
    def _targets(template: dict[str, Any], resolver: Resolver) -> list[Target]:
        targets = []
        for spec in tpl.functions(template):
            if not resolver.resource_enabled(spec.logical_id):
                continue
            for route in spec.routes:
                targets.append(
                    Target(
                        route.method,
                        route.path,
                        spec.logical_id,
                        spec.code_uri,
                        spec.handler,
                        route.uses_jwt_authorizer,
                    )
                )
        return targets

    def _start_environments(
        self, environment: dict[str, str], targets: list[Target], functions: dict[str, dict[str, Any]]
    ) -> Any:
        if self.runtime == "lambda":
            from local.invoke import Function, Runtimes

            served = {t.function for t in targets}
            return Runtimes(
                [Function.from_info(name, functions[name]) for name in sorted(served) if name in functions],
                per_function=self.concurrency,
            )
        from local.workers import Environments

        preload = []
        for code_uri, handler in sorted({(t.code_uri, t.handler) for t in targets}):
            module = handler.rpartition(".")[0].replace(".", "/")
            if (ROOT / code_uri / f"{module}.py").is_file():
                preload.append((code_uri, handler))
            else:  # its routes answer 500, as a function whose code does not load would
                names = sorted({t.function for t in targets if t.code_uri == code_uri})
                print(
                    f"local stack: {', '.join(names)}: no {code_uri.rstrip('/')}/{module}.py", file=sys.stderr
                )
        return Environments(
            environment,
            size=self.concurrency,
            preload=preload,
            setup=self.setup,
            clock_file=self.clock_file,
        )

    def _invoke(self, target: Target, event: dict[str, Any]) -> dict[str, Any]:
        if self._examples is not None and self._examples.serves(target):
            return self._examples.invoke(target, event)  # type: ignore[no-any-return]
        result: dict[str, Any] = self._environments.invoke(
            target.code_uri, target.handler, event, target.function
        )
        return result

    @staticmethod
    def _http_apis(template: dict[str, Any], resolver: Resolver) -> list[dict[str, Any]]:
        return [
            resolver.resolve(resource.get("Properties", {}))
            for logical_id, resource in template["Resources"].items()
            if isinstance(resource, dict)
            and resource.get("Type") == tpl.HTTP_API_TYPE
            and resolver.resource_enabled(logical_id)
        ]

    def _authorizer(
        self, template: dict[str, Any], resolver: Resolver, endpoint: str
    ) -> JwtAuthorizer | None:
        configs = []
        for api in self._http_apis(template, resolver):
            for authorizer in ((api.get("Auth") or {}).get("Authorizers") or {}).values():
                jwt_config = authorizer.get("JwtConfiguration")
                if isinstance(jwt_config, dict):
                    configs.append(
                        (str(jwt_config.get("issuer", "")), tuple(jwt_config.get("audience") or ()))
                    )
        if not configs:
            return None
        if len(set(configs)) > 1:
            raise tpl.TemplateError("the local stack emulates one JWT authorizer; template.yaml has several")
        issuer, audiences = configs[0]
        cognito = _COGNITO_ISSUER.match(issuer)
        if cognito is None:
            raise tpl.TemplateError(
                f"the JWT authorizer trusts {issuer!r}; locally only the stack's own user pool can sign people in"
            )
        return JwtAuthorizer(issuer, audiences, f"{endpoint}/{cognito['pool']}/.well-known/jwks.json")

    def _cors(self, template: dict[str, Any], resolver: Resolver) -> Cors | None:
        for api in self._http_apis(template, resolver):
            config = api.get("CorsConfiguration")
            if config is True:
                return Cors(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))
            if isinstance(config, dict):
                return Cors.from_template(config)
        return None


def _write_private_json(path: Path, document: dict[str, Any]) -> None:
    """Written atomically, readable by its owner only: it holds the demo password and a client secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
    os.replace(partial, path)


# ---------------------------------------------------------------- the functions' configuration


def local_aws_environment(endpoint: str) -> dict[str, str]:
    """What the stack sets in every function's environment besides the template's variables: the
    embedded AWS endpoint, its region, credentials it accepts, and nothing that could reach a real AWS
    account."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        # No shared config or credentials files: nothing here may reach a real AWS account.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def function_environments(
    template: dict[str, Any], resolver: Resolver, endpoint: str
) -> dict[str, dict[str, str]]:
    """Each enabled function's variables, as Lambda would set them: Globals and its own, resolved by
    `resolver`, plus `local_aws_environment(endpoint)`. A variable whose value resolves to nothing
    (AWS::NoValue) or to a list or mapping is left out."""
    out: dict[str, dict[str, str]] = {}
    for spec in tpl.functions(template):
        if not resolver.resource_enabled(spec.logical_id):
            continue
        variables: dict[str, str] = {}
        for name, value in spec.environment.items():
            resolved = resolver.resolve(value)
            if isinstance(resolved, list | dict) or resolved is None or resolved is NO_VALUE:
                continue
            variables[name] = resolver.string(resolved)
        variables.update(local_aws_environment(endpoint))
        out[spec.logical_id] = variables
    return out


def function_limits(template: dict[str, Any], resolver: Resolver, logical_id: str) -> tuple[int, int]:
    """A function's Timeout (seconds) and MemorySize (MB), Globals.Function merged in; Lambda's defaults
    (3 s, 128 MB) when neither sets them."""
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    properties = template["Resources"][logical_id].get("Properties") or {}
    timeout = resolver.resolve(properties.get("Timeout", globals_.get("Timeout", 3)))
    memory_size = resolver.resolve(properties.get("MemorySize", globals_.get("MemorySize", 128)))
    return int(timeout), int(memory_size)
