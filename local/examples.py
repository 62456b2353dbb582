"""The examples (examples/*/template.yaml) on the local stack: `make serve` serves them beside the API.

Each example is a SAM template of its own (a stack a product team deploys beside the token service, not
a part of it), so template.yaml and its tests stay the token service's alone. Locally they share the
API's port: their routes (`GET /demo/me`, `GET /demo/app`) join the gateway's, on the same origin as
the token service (the web app's refresh cookie is the API's, `Path=/auth`).

They run in execution environments of their own, not the API's: the resource server fetches the API's
JWKS over HTTP, and one of the API's environments must be free to answer it. Their parameters are
filled from the running stack: `TokenIssuer` and `JwksUrl` are the API's, `ClientId` the public client
`demo-web` this module registers (device flow and refresh, scopes read and write).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local import template as tpl
from local.cfn import Resolver
from local.gateway import Target

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
WEB_CLIENT_ID = "demo-web"
WEB_CLIENT_NAME = "Demo web app"


def templates() -> list[Path]:
    return sorted(EXAMPLES.glob("*/template.yaml"))


def parameters(api_url: str, audience: str) -> dict[str, str]:
    """What the examples' templates are told about the running stack (each takes the ones it declares)."""
    return {
        "TokenIssuer": api_url,
        "TokenAudience": audience,
        "JwksUrl": f"{api_url}/.well-known/jwks.json",
        "ClientId": WEB_CLIENT_ID,
    }


@dataclass
class Examples:
    """The examples' routes and the environments that run them."""

    targets: list[Target]
    functions: dict[str, dict[str, Any]]  # as StackInfo.functions
    urls: dict[str, str]  # example name -> its first route's URL
    environments: Any  # local.workers.Environments

    def serves(self, target: Target) -> bool:
        return target.function in self.functions

    def invoke(self, target: Target, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.environments.invoke(
            target.code_uri, target.handler, event, target.function
        )
        return result

    def pids(self) -> list[int]:
        return [int(process.pid) for process, _ in getattr(self.environments, "_all", [])]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.environments.close()


def start(
    api_url: str,
    aws_environment: Mapping[str, str],
    *,
    audience: str = "",
    concurrency: int = 2,
    passthrough: Mapping[str, str] | None = None,
) -> Examples:
    """Read every example's template, resolve it against the running stack, and start its functions."""
    from local.stack import function_limits
    from local.workers import Environments

    given = parameters(api_url, audience)
    targets: list[Target] = []
    functions: dict[str, dict[str, Any]] = {}
    urls: dict[str, str] = {}
    environment: dict[str, str] = dict(passthrough or {})
    for path in templates():
        template = tpl.load_template(path)
        declared = template.get("Parameters") or {}
        resolver = Resolver(template, parameters={k: v for k, v in given.items() if k in declared})
        folder = path.parent.relative_to(ROOT)
        for spec in tpl.functions(template):
            if not resolver.resource_enabled(spec.logical_id):
                continue
            code_uri = os.path.normpath(folder / spec.code_uri) + "/"
            variables = {name: resolver.string(resolver.resolve(v)) for name, v in spec.environment.items()}
            variables.update(aws_environment)
            for name, value in variables.items():
                if environment.get(name, value) != value:
                    raise tpl.TemplateError(f"{spec.logical_id} sets {name} unlike another example")
                environment[name] = value
            timeout, memory_size = function_limits(template, resolver, spec.logical_id)
            functions[spec.logical_id] = {
                "code_uri": code_uri,
                "handler": spec.handler,
                "timeout": timeout,
                "memory_size": memory_size,
                "environment": variables,
            }
            for route in spec.routes:
                targets.append(
                    Target(route.method, route.path, spec.logical_id, code_uri, spec.handler, False)
                )
                urls.setdefault(path.parent.name, f"{api_url}{route.path}")
    preload = sorted({(t.code_uri, t.handler) for t in targets})
    environments = Environments(environment, size=max(1, concurrency), preload=preload)
    return Examples(targets, functions, urls, environments)


def register_web_client(store: Any) -> None:
    """The public client the web app signs in as (once: a stack that already has it keeps it)."""
    from local import admin

    if store.get_client(WEB_CLIENT_ID) is None:
        admin.create_client(
            store,
            name=WEB_CLIENT_NAME,
            client_type="public",
            grant_types=["device_code", "refresh_token"],
            scopes=["read", "write"],
            client_id=WEB_CLIENT_ID,
        )
