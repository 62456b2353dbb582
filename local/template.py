"""Read template.yaml: the one description of the infrastructure, for tests and the local server.

`load_template` parses it, CloudFormation short-form tags included (`!Ref X` becomes `{"Ref": "X"}`,
`!Sub s` becomes `{"Fn::Sub": s}`, `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`). `table_spec`
and `ttl_attribute` give what boto3 needs to build the same table; `functions` lists every Lambda
function with its code, handler, HTTP routes and environment (Globals merged, values unresolved).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml  # type: ignore[import-untyped, unused-ignore]

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "template.yaml"

TABLE_TYPE = "AWS::DynamoDB::Table"
FUNCTION_TYPE = "AWS::Serverless::Function"
HTTP_API_TYPE = "AWS::Serverless::HttpApi"

# Short-form tags whose long form is "Fn::<Tag>"; !Ref, !Condition and !GetAtt are special-cased below.
_FN_TAGS = (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
)


class TemplateError(ValueError):
    """template.yaml does not have the shape this module relies on."""


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]
    """A SafeLoader that also understands CloudFormation's short-form intrinsic functions."""


def _construct(loader: Any, node: Any) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _fn(name: str) -> Any:
    def construct(loader: Any, node: Any) -> dict[str, Any]:
        return {name: _construct(loader, node)}

    return construct


def _get_att(loader: Any, node: Any) -> dict[str, Any]:
    value = _construct(loader, node)
    if isinstance(value, str):  # !GetAtt Resource.Attribute (the attribute may itself contain dots)
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {"Fn::GetAtt": value}


_CfnLoader.add_constructor("!Ref", _fn("Ref"))
_CfnLoader.add_constructor("!Condition", _fn("Condition"))
_CfnLoader.add_constructor("!GetAtt", _get_att)
for _tag in _FN_TAGS:
    _CfnLoader.add_constructor(f"!{_tag}", _fn(f"Fn::{_tag}"))


def load_template(path: str | Path | None = None) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template (template.yaml at the repository root by default)."""
    text = Path(path or TEMPLATE_PATH).read_text(encoding="utf-8")
    document = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError("not a CloudFormation template: no Resources mapping")
    return document


def _resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if isinstance(resource, dict) and resource.get("Type") == type_
    }


def _table_properties(template: dict[str, Any], logical_id: str | None) -> dict[str, Any]:
    tables = _resources(template, TABLE_TYPE)
    if logical_id is None:
        if len(tables) != 1:
            raise TemplateError(f"expected exactly one {TABLE_TYPE}, found {sorted(tables)}; name one")
        (logical_id,) = tables
    if logical_id not in tables:
        raise TemplateError(f"no {TABLE_TYPE} named {logical_id!r}")
    properties: dict[str, Any] = tables[logical_id].get("Properties", {})
    return properties


def table_spec(template: dict[str, Any], logical_id: str | None = None) -> dict[str, Any]:
    """Keyword arguments for boto3 `create_table` (all but TableName) that build the template's table.

    Includes KeySchema, AttributeDefinitions and BillingMode, and the secondary indexes when there are any.
    The TTL is not a `create_table` argument: see `ttl_attribute`.
    """
    properties = _table_properties(template, logical_id)
    spec: dict[str, Any] = {}
    for key in ("KeySchema", "AttributeDefinitions"):
        if key not in properties:
            raise TemplateError(f"the table has no {key}")
        spec[key] = properties[key]
    spec["BillingMode"] = properties.get("BillingMode", "PROVISIONED")
    if spec["BillingMode"] == "PROVISIONED":
        spec["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in properties:
            spec[key] = properties[key]
    _require_literal(spec, "the table's key schema")
    return spec


def ttl_attribute(template: dict[str, Any], logical_id: str | None = None) -> str | None:
    """The table's TTL attribute name, or None when TTL is not enabled."""
    ttl = _table_properties(template, logical_id).get("TimeToLiveSpecification")
    if not isinstance(ttl, dict) or ttl.get("Enabled") is not True:
        return None
    name = ttl.get("AttributeName")
    if not isinstance(name, str):
        raise TemplateError("TimeToLiveSpecification.AttributeName must be a literal string")
    return name


def _require_literal(value: Any, what: str) -> None:
    """Refuse intrinsic functions where a literal is needed (they cannot be resolved locally)."""
    if isinstance(value, dict):
        if any(key == "Ref" or key.startswith("Fn::") for key in value):
            raise TemplateError(f"{what} uses an intrinsic function; it must be literal")
        for item in value.values():
            _require_literal(item, what)
    elif isinstance(value, list):
        for item in value:
            _require_literal(item, what)


DEFAULT_ROUTE = "$default"  # what API Gateway calls the route of every request no other route matches


class Route(NamedTuple):
    method: str
    path: str
    uses_jwt_authorizer: bool


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: str
    handler: str
    routes: list[Route] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)


def _jwt_authorizers(template: dict[str, Any]) -> tuple[dict[str, set[str]], dict[str, str | None]]:
    """Per HTTP API: the names of its JWT authorizers, and its default authorizer."""
    jwt: dict[str, set[str]] = {}
    default: dict[str, str | None] = {}
    for logical_id, api in _resources(template, HTTP_API_TYPE).items():
        auth = api.get("Properties", {}).get("Auth", {})
        authorizers = auth.get("Authorizers", {})
        jwt[logical_id] = {name for name, spec in authorizers.items() if "JwtConfiguration" in spec}
        default[logical_id] = auth.get("DefaultAuthorizer")
    return jwt, default


def _api_id(properties: dict[str, Any]) -> str | None:
    api = properties.get("ApiId")
    if api is None:
        return None  # the implicit API SAM creates when an event names none
    if isinstance(api, dict) and isinstance(api.get("Ref"), str):
        return str(api["Ref"])
    raise TemplateError(f"HttpApi event ApiId must be !Ref to an API in the template, not {api!r}")


def _routes(events: dict[str, Any], jwt: dict[str, set[str]], default: dict[str, str | None]) -> list[Route]:
    routes = []
    for event in events.values():
        if event.get("Type") != "HttpApi":
            continue
        properties = event.get("Properties", {})
        api = _api_id(properties)
        key = api or ""
        # An event's own Authorizer wins over the API's DefaultAuthorizer; "NONE" switches it off.
        authorizer = properties.get("Auth", {}).get("Authorizer", default.get(key))
        uses_jwt = authorizer is not None and authorizer in jwt.get(key, set())
        if "Method" not in properties and "Path" not in properties:  # SAM: the API's $default route
            routes.append(Route("ANY", DEFAULT_ROUTE, uses_jwt))
            continue
        routes.append(Route(properties["Method"].upper(), properties["Path"], uses_jwt))
    return routes


def functions(template: dict[str, Any]) -> list[FunctionSpec]:
    """Every AWS::Serverless::Function, in template order, with Globals.Function merged in."""
    globals_ = template.get("Globals", {}).get("Function", {})
    global_env = globals_.get("Environment", {}).get("Variables", {})
    jwt, default = _jwt_authorizers(template)
    specs = []
    for logical_id, resource in _resources(template, FUNCTION_TYPE).items():
        properties = resource.get("Properties", {})
        code_uri = properties.get("CodeUri", globals_.get("CodeUri"))
        handler = properties.get("Handler", globals_.get("Handler"))
        if not isinstance(code_uri, str) or not isinstance(handler, str):
            raise TemplateError(f"{logical_id}: CodeUri and Handler must be literal strings")
        own_env = properties.get("Environment", {}).get("Variables", {})
        specs.append(
            FunctionSpec(
                logical_id=logical_id,
                code_uri=code_uri,
                handler=handler,
                routes=_routes(properties.get("Events", {}), jwt, default),
                environment={**global_env, **own_env},
            )
        )
    return specs
