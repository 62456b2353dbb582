"""Operations in template.yaml (docs/operations.md): the alarms, the dashboard, the API's access log and
the custom domain, checked against the code so that they cannot drift from it.

- Every metric an alarm or a dashboard widget reads in the service's own namespace (`TokenService`) is a
  metric the code emits: the names come from the code (authcore.observability, and any other
  `add_metric` call, found by reading the source), with the namespace and dimensions the code really
  publishes them under (Powertools' EMF serialization).
- Every metric in `TokenService/AccessLog` is made by a metric filter of the access log.
- Every AWS metric names a resource of this stack: the functions, the table, the dead-letter queue, the API.
- The access log's fields are the local stack's (local/gateway.py), and none of them can carry a secret.
- The custom domain: its conditions, and the issuer the functions end up with.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import pytest

from authcore import observability, routes
from local.cfn import Resolver
from local.gateway import ACCESS_LOG_FIELDS, LOCAL_ACCESS_LOG_FIELDS
from local.template import functions, load_template
from tests.conftest import Api
from tests.integration.test_template import sam

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
CODE = (ROOT / "layers" / "authcore", ROOT / "functions")

NAMESPACE = "TokenService"  # POWERTOOLS_METRICS_NAMESPACE
ACCESS_LOG_NAMESPACE = "TokenService/AccessLog"  # the access log's metric filters
AWS_NAMESPACES = {"AWS/Lambda", "AWS/DynamoDB", "AWS/SQS", "AWS/ApiGateway"}

# The routes that issue tokens, whose p99 latency TokenLatencyAlarm watches.
TOKEN_ROUTES = {"POST /oauth/token", "GET /oauth/token", "POST /auth/refresh", "POST /auth/device/exchange"}

ALARMS = {
    "ReuseDetectedAlarm",
    "ForgedTokensAlarm",
    "Api5xxAlarm",
    "ApiThrottledAlarm",
    "TokenLatencyAlarm",
    "TableThrottledAlarm",
    "TableSystemErrorsAlarm",
    "KeyRotationFailedAlarm",
    "SecurityEventsDeadLetterAlarm",
}
# A metric the code emits that the dashboard need not show: the sum of the per-reason refusals it shows.
NOT_ON_THE_DASHBOARD = {"token_refused"}

# $context variables that would put a secret (or a person's data beyond the user agent) in the log.
FORBIDDEN_IN_ACCESS_LOG = ("query", "header", "cookie", "body", "authoriz", "claims", "$input", "$request")

DOMAIN = {
    "DomainName": "auth.example.com",
    "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
}
HOSTED_ZONE = {"HostedZoneId": "Z0123456789ABCDEFGHIJ"}
# Every optional parameter of the operations set, for `sam validate --lint` with them set.
OPTIONAL_SET = {**DOMAIN, **HOSTED_ZONE, "AlarmEmail": "ops@example.com"}


# ---------------------------------------------------------------- what the template says


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == type_}


def function_ids(template: dict[str, Any]) -> set[str]:
    return {spec.logical_id for spec in functions(template)}


def dimensions(pairs: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in pairs or []}


def alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric name, dimensions) of each metric an alarm reads, its own or its metric math's."""
    props = alarm["Properties"]
    if "MetricName" in props:
        return [(props["Namespace"], props["MetricName"], dimensions(props.get("Dimensions")))]
    found = []
    for query in props["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            found.append((metric["Namespace"], metric["MetricName"], dimensions(metric.get("Dimensions"))))
        else:
            assert "METRICS()" in query["Expression"] or "SEARCH" not in query["Expression"], query
    return found


@pytest.fixture(scope="module")
def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return of_type(template, "AWS::CloudWatch::Alarm")


_SUB = re.compile(r"\$\{([^}!]+)\}")


def substituted(template: dict[str, Any], text: str) -> tuple[str, set[str]]:
    """A !Sub string with each ${Name} or ${Name.Attribute} replaced by `<Name>` / `<Name.Attribute>`,
    and the names it refers to."""
    names: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        names.add(name)
        return f"<{name}>"

    return _SUB.sub(replace, text), names


@pytest.fixture(scope="module")
def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    (resource,) = of_type(template, "AWS::CloudWatch::Dashboard").values()
    text, names = substituted(template, resource["Properties"]["DashboardBody"]["Fn::Sub"])
    for name in names:
        assert name.startswith("AWS::") or name.split(".")[0] in template["Resources"], name
    body: dict[str, Any] = json.loads(text)
    return body


def widget_metrics(dashboard: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for widget in dashboard["widgets"]:
        for row in widget["properties"].get("metrics", []):
            plain = [item for item in row if not isinstance(item, dict)]
            assert "..." not in plain and len(plain) % 2 == 0, row  # every row written out in full
            namespace, name, *pairs = plain
            found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


def as_ref(value: Any) -> Any:
    """A dashboard's `<Name>` / `<Name.Attribute>` written the way an alarm's dimension is."""
    if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
        name = value[1:-1]
        if "." in name:
            return {"Fn::GetAtt": name.split(".", 1)}
        return {"Ref": name}
    return value


def every_metric(
    alarms: dict[str, dict[str, Any]], dashboard: dict[str, Any]
) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(where, namespace, name, dimensions) of every metric an alarm or a widget reads."""
    for logical_id, alarm in alarms.items():
        for namespace, name, dims in alarm_metrics(alarm):
            yield logical_id, namespace, name, dims
    for namespace, name, dims in widget_metrics(dashboard):
        yield "Dashboard", namespace, name, {key: as_ref(value) for key, value in dims.items()}


# ---------------------------------------------------------------- what the code emits


def _calls(name: str) -> Iterator[tuple[Path, ast.Call]]:
    for root in CODE:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == name
                ):
                    yield path, node


@pytest.fixture(scope="module")
def emitted() -> tuple[set[str], str, list[list[str]], str]:
    """The metric names the code emits, and the namespace, dimensions and service it puts them under.

    The service's metrics are the audit lines' own (EMF: observability.audit); any other way of emitting
    one (Powertools' add_metric or single_metric) must name it where this test can read it."""
    names: set[str] = set()
    for path, call in [*_calls("add_metric"), *_calls("single_metric")]:
        named = next((k.value for k in call.keywords if k.arg == "name"), call.args[0] if call.args else None)
        assert named is not None, f"{path}:{call.lineno}: a metric without a name"
        assert isinstance(named, ast.Constant) and isinstance(named.value, str), (
            f"{path}:{call.lineno}: a metric named by {ast.unparse(named)}: make its names known to "
            "tests/integration/test_operations.py (`emitted`)"
        )
        names.add(named.value)
    from authcore.observability import logger

    handler = cast(logging.StreamHandler[Any], logger.registered_handler)
    written = io.StringIO()
    previous = handler.setStream(written)
    try:
        for event in observability.AUDIT_EVENTS:
            observability.audit(event)
        for reason in observability.REFUSAL_REASONS:
            observability.refused(reason, kind="refresh_token")
    finally:
        handler.setStream(previous)
    directives = set()
    for line in written.getvalue().splitlines():
        record = json.loads(line)
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        names |= {metric["Name"] for metric in directive["Metrics"]}
        directives.add((directive["Namespace"], json.dumps(directive["Dimensions"]), record["service"]))
    ((namespace, dimensions, service),) = directives
    return names, namespace, json.loads(dimensions), service


def test_the_code_emits_the_metrics_the_alarms_are_named_after(
    emitted: tuple[set[str], str, list[list[str]], str],
) -> None:
    """The collection itself: the audit events and every refusal reason, nothing invented."""
    names, namespace, dims, service = emitted
    expected = set(observability.AUDIT_EVENTS) | {f"token_refused_{r}" for r in observability.REFUSAL_REASONS}
    assert names == expected
    assert {"reuse_detected", "token_refused_forged", "session_revoked", "device_rate_limited"} <= names
    assert (namespace, dims, service) == (NAMESPACE, [["service"]], "token-service")


def test_the_functions_publish_under_that_namespace_and_service(template: dict[str, Any]) -> None:
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    assert env["POWERTOOLS_SERVICE_NAME"] == "token-service"


# ---------------------------------------------------------------- alarms


def test_each_alarm_exists_and_notifies_the_topic(
    template: dict[str, Any], alarms: dict[str, dict[str, Any]]
) -> None:
    assert set(alarms) >= ALARMS, ALARMS - set(alarms)
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert props["OKActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert props["TreatMissingData"] == "notBreaching", logical_id  # no traffic is not an incident
        assert "docs/operations.md#" in props["AlarmDescription"], logical_id  # where the runbook is
        assert "Condition" not in alarm, logical_id
    topic = template["Resources"]["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic"
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""  # no subscription unless asked


def test_the_runbook_has_a_section_for_each_alarm(alarms: dict[str, dict[str, Any]]) -> None:
    runbook = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", runbook, flags=re.MULTILINE)
    }
    for logical_id, alarm in alarms.items():
        anchor = re.search(r"docs/operations\.md#([a-z0-9-]+)", alarm["Properties"]["AlarmDescription"])
        assert anchor is not None and anchor.group(1) in anchors, (logical_id, anchor)
        assert logical_id in runbook, logical_id


def single(alarm: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    (metric,) = alarm_metrics(alarm)
    return metric


def test_reuse_alarms_at_the_first_one(alarms: dict[str, dict[str, Any]]) -> None:
    alarm = alarms["ReuseDetectedAlarm"]
    props = alarm["Properties"]
    assert single(alarm) == (NAMESPACE, "reuse_detected", {"service": "token-service"})
    assert (props["Statistic"], props["Threshold"]) == ("Sum", 1)
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_forged_tokens_alarm_above_a_rate_set_by_a_parameter(
    template: dict[str, Any], alarms: dict[str, dict[str, Any]]
) -> None:
    alarm = alarms["ForgedTokensAlarm"]
    assert single(alarm) == (NAMESPACE, "token_refused_forged", {"service": "token-service"})
    assert alarm["Properties"]["Threshold"] == {"Ref": "ForgedTokenAlarmThreshold"}
    assert template["Parameters"]["ForgedTokenAlarmThreshold"]["Type"] == "Number"


def test_api_alarms_watch_this_api(alarms: dict[str, dict[str, Any]]) -> None:
    assert single(alarms["Api5xxAlarm"]) == ("AWS/ApiGateway", "5xx", {"ApiId": {"Ref": "HttpApi"}})
    assert single(alarms["ApiThrottledAlarm"]) == (ACCESS_LOG_NAMESPACE, "throttled_requests", {})
    latency = alarms["TokenLatencyAlarm"]
    assert single(latency) == (ACCESS_LOG_NAMESPACE, "token_route_latency", {})
    assert latency["Properties"]["ExtendedStatistic"] == "p99"
    assert latency["Properties"]["Threshold"] == {"Ref": "TokenLatencyAlarmMilliseconds"}


def test_every_function_has_an_errors_and_a_throttles_alarm(
    template: dict[str, Any], alarms: dict[str, dict[str, Any]]
) -> None:
    watched: dict[str, set[str]] = {"Errors": set(), "Throttles": set()}
    for alarm in alarms.values():
        for namespace, name, dims in alarm_metrics(alarm):
            if namespace == "AWS/Lambda":
                assert set(dims) == {"FunctionName"} and set(dims["FunctionName"]) == {"Ref"}, dims
                watched[name].add(dims["FunctionName"]["Ref"])
    assert watched == {"Errors": function_ids(template), "Throttles": function_ids(template)}


def test_key_rotation_failure_is_its_own_alarm(alarms: dict[str, dict[str, Any]]) -> None:
    assert single(alarms["KeyRotationFailedAlarm"]) == (
        "AWS/Lambda",
        "Errors",
        {"FunctionName": {"Ref": "KeyRotationFunction"}},
    )


def test_the_dead_letter_queue_alarms_when_not_empty(alarms: dict[str, dict[str, Any]]) -> None:
    alarm = alarms["SecurityEventsDeadLetterAlarm"]
    assert single(alarm) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": {"Fn::GetAtt": ["SecurityEventsDeadLetterQueue", "QueueName"]}},
    )
    assert alarm["Properties"]["Threshold"] == 1
    assert alarm["Properties"]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def dynamodb_operations() -> set[str]:
    """The DynamoDB operations the code calls (store.py is the only adapter), by the client's names."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    mapping: dict[str, str] = client.meta.method_to_api_mapping
    source = ast.parse((ROOT / "layers" / "authcore" / "store.py").read_text())
    return {
        mapping[node.func.attr]
        for node in ast.walk(source)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in mapping
    }


@pytest.mark.parametrize(("logical_id", "metric"), [("TableThrottledAlarm", "ThrottledRequests"),
                                                    ("TableSystemErrorsAlarm", "SystemErrors")])  # fmt: skip
def test_table_alarms_cover_every_operation_the_code_calls(
    alarms: dict[str, dict[str, Any]], logical_id: str, metric: str
) -> None:
    operations = dynamodb_operations()
    assert {"GetItem", "UpdateItem", "TransactWriteItems"} <= operations  # the collection works
    watched = alarm_metrics(alarms[logical_id])
    assert {(ns, name) for ns, name, _ in watched} == {("AWS/DynamoDB", metric)}
    assert all(dims["TableName"] == {"Ref": "Table"} for _, _, dims in watched)
    assert {dims["Operation"] for _, _, dims in watched} == operations
    assert len(watched) <= 10  # an alarm's metric math reads at most 10 metrics


# ---------------------------------------------------------------- every metric, alarms and dashboard


def test_every_metric_of_the_service_is_one_the_code_emits(
    alarms: dict[str, dict[str, Any]],
    dashboard: dict[str, Any],
    emitted: tuple[set[str], str, list[list[str]], str],
) -> None:
    names, namespace, dims, service = emitted
    seen = set()
    for where, ns, name, metric_dims in every_metric(alarms, dashboard):
        if ns == namespace:
            seen.add(name)
            assert name in names, f"{where} reads {ns}/{name}, which the code never emits"
            assert metric_dims == {dims[0][0]: service}, (where, name, metric_dims)
    assert {"reuse_detected", "token_refused_forged"} <= seen


def test_every_metric_the_code_emits_is_on_the_dashboard(
    dashboard: dict[str, Any], emitted: tuple[set[str], str, list[list[str]], str]
) -> None:
    names, namespace, _, _ = emitted
    shown = {name for ns, name, _ in widget_metrics(dashboard) if ns == namespace}
    assert names - shown == NOT_ON_THE_DASHBOARD


def test_every_access_log_metric_is_made_by_a_metric_filter(
    template: dict[str, Any], alarms: dict[str, dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    made = {}
    for logical_id, resource in of_type(template, "AWS::Logs::MetricFilter").items():
        props = resource["Properties"]
        assert props["LogGroupName"] == {"Ref": "ApiAccessLogGroup"}, logical_id
        (transformation,) = props["MetricTransformations"]
        assert "Dimensions" not in transformation  # one metric each, not one per value
        made[(transformation["MetricNamespace"], transformation["MetricName"])] = props
    assert set(made) == {
        (ACCESS_LOG_NAMESPACE, "throttled_requests"),
        (ACCESS_LOG_NAMESPACE, "token_route_latency"),
    }
    for where, ns, name, dims in every_metric(alarms, dashboard):
        if ns == ACCESS_LOG_NAMESPACE:
            assert (ns, name) in made and dims == {}, (where, name)


def test_every_aws_metric_names_a_resource_of_this_stack(
    template: dict[str, Any], alarms: dict[str, dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    lambdas = [{"Ref": f} for f in function_ids(template)]
    expected = {
        "AWS/DynamoDB": {"TableName": {"Ref": "Table"}},
        "AWS/SQS": {"QueueName": {"Fn::GetAtt": ["SecurityEventsDeadLetterQueue", "QueueName"]}},
        "AWS/ApiGateway": {"ApiId": {"Ref": "HttpApi"}},
    }
    for where, ns, name, dims in every_metric(alarms, dashboard):
        if ns in (NAMESPACE, ACCESS_LOG_NAMESPACE):
            continue
        assert ns in AWS_NAMESPACES, (where, ns)
        if ns == "AWS/Lambda":
            assert set(dims) == {"FunctionName"} and dims["FunctionName"] in lambdas, (where, name, dims)
            continue
        ((key, value),) = expected[ns].items()
        assert dims.get(key) == value, (where, name, dims)
        assert set(dims) <= {key, "Operation"}, (where, name, dims)


# ---------------------------------------------------------------- dashboard


def test_the_dashboard_shows_what_the_issue_asks_for(
    template: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    shown = {(ns, name) for ns, name, _ in widget_metrics(dashboard)}
    for name in ("device_authorized", "device_approved", "device_denied", "issued"):  # sign-ins
        assert (NAMESPACE, name) in shown
    for name in ("rotated", "reuse_detected", "session_revoked"):  # refreshes, reuse, revocations
        assert (NAMESPACE, name) in shown
    for reason in observability.REFUSAL_REASONS:  # errors by type
        assert (NAMESPACE, f"token_refused_{reason}") in shown
    for name in ("4xx", "5xx", "Latency"):
        assert ("AWS/ApiGateway", name) in shown
    for name in ("Errors", "Throttles"):
        assert ("AWS/Lambda", name) in shown
    for name in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits", "ThrottledRequests"):
        assert ("AWS/DynamoDB", name) in shown
    stats = {
        (name, options.get("stat"))
        for widget in dashboard["widgets"]
        for row in widget["properties"].get("metrics", [])
        for name, options in [(row[1], row[-1] if isinstance(row[-1], dict) else {})]
    }
    assert {("Latency", "p50"), ("Latency", "p99")} <= stats
    assert {("token_route_latency", "p50"), ("token_route_latency", "p99")} <= stats

    queries = [w["properties"]["query"] for w in dashboard["widgets"] if w["type"] == "log"]
    per_route = [q for q in queries if "<ApiAccessLogGroup>" in q]
    assert per_route and all("by routeKey" in q and "pct(responseLatency, 99)" in q for q in per_route)
    # Cold starts: the handlers do not capture Powertools' ColdStart metric (authcore.http.entrypoint),
    # so the widget reads the Init Duration of every function's REPORT lines.
    (cold,) = [q for q in queries if "@initDuration" in q]
    assert set(re.findall(r"SOURCE '/aws/lambda/<(\w+)>'", cold)) == function_ids(template)


def test_the_dashboard_lists_every_alarm(
    alarms: dict[str, dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    (widget,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert sorted(widget["properties"]["alarms"]) == sorted(f"<{a}.Arn>" for a in alarms)


def test_the_dashboard_widgets_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for widget in dashboard["widgets"]:
        assert widget["x"] + widget["width"] <= 24, widget
        title = widget["properties"].get("title", widget["type"])
        for x in range(widget["x"], widget["x"] + widget["width"]):
            for y in range(widget["y"], widget["y"] + widget["height"]):
                assert (x, y) not in cells, (title, cells.get((x, y)))
                cells[(x, y)] = title


# ---------------------------------------------------------------- access log


@pytest.fixture(scope="module")
def access_log_format(template: dict[str, Any]) -> dict[str, str]:
    settings = template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fields: dict[str, str] = json.loads(settings["Format"])  # one JSON object: one line per request
    assert "\n" not in settings["Format"]
    return fields


def test_the_access_log_has_the_required_fields(access_log_format: dict[str, str]) -> None:
    variables = set(access_log_format.values())
    for required in (
        "$context.requestId",
        "$context.routeKey",
        "$context.status",
        "$context.responseLatency",
        "$context.integrationLatency",
        "$context.identity.sourceIp",
        "$context.identity.userAgent",
        "$context.integrationErrorMessage",
    ):
        assert required in variables, required
    for name, variable in access_log_format.items():
        assert re.fullmatch(r"\$context\.[A-Za-z.]+", variable), (name, variable)  # one variable, quoted


def test_the_access_log_holds_no_query_string_header_cookie_or_body(
    access_log_format: dict[str, str],
) -> None:
    for name, variable in access_log_format.items():
        if variable == "$context.identity.userAgent":
            continue  # the one header it keeps
        for forbidden in FORBIDDEN_IN_ACCESS_LOG:
            assert forbidden not in variable.lower(), (name, variable)
    assert access_log_format["path"] == "$context.path"  # the path, without its query string


def test_the_local_access_line_has_the_same_fields(access_log_format: dict[str, str]) -> None:
    """local/gateway.py's access line (tests/unit/test_gateway.py checks what it writes) has the
    template's fields, in its order, plus the function's logical id that only the local stack knows."""
    assert list(ACCESS_LOG_FIELDS) == list(access_log_format)
    assert set(LOCAL_ACCESS_LOG_FIELDS).isdisjoint(access_log_format)


def test_the_access_log_is_kept_for_a_while(template: dict[str, Any]) -> None:
    group = template["Resources"]["ApiAccessLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "AccessLogRetentionDays"}
    assert (
        template["Parameters"]["AccessLogRetentionDays"]["Default"]
        in (template["Parameters"]["AccessLogRetentionDays"]["AllowedValues"])
    )


def test_the_metric_filters_read_fields_of_the_access_log(
    template: dict[str, Any], access_log_format: dict[str, str]
) -> None:
    filters = of_type(template, "AWS::Logs::MetricFilter")
    for logical_id, resource in filters.items():
        props = resource["Properties"]
        fields = set(re.findall(r"\$\.(\w+)", props["FilterPattern"]))
        fields |= set(re.findall(r"\$\.(\w+)", props["MetricTransformations"][0]["MetricValue"]))
        assert fields and fields <= set(access_log_format), (logical_id, fields)
    latency = filters["TokenLatencyMetricFilter"]["Properties"]
    named = set(re.findall(r'\$\.routeKey = "([^"]+)"', latency["FilterPattern"]))
    assert named == TOKEN_ROUTES
    assert named <= {route.key for route in routes.ROUTES}  # routes that exist
    assert {routes.BY_KEY[key].resource for key in named} == {
        "TokenFunction",
        "RefreshFunction",
        "DeviceExchangeFunction",
    }
    assert latency["MetricTransformations"][0]["MetricValue"] == "$.responseLatency"
    throttled = filters["ApiThrottledMetricFilter"]["Properties"]
    assert throttled["FilterPattern"] == '{ $.status = "429" }'  # every value of the format is a string


# ---------------------------------------------------------------- custom domain


def resolver(template: dict[str, Any], **parameters: str) -> Resolver:
    return Resolver(template, parameters=parameters)


@pytest.mark.parametrize(
    ("parameters", "created"),
    [
        ({}, set()),
        (DOMAIN, {"ApiDomain", "ApiDomainMapping"}),
        ({**DOMAIN, **HOSTED_ZONE}, {"ApiDomain", "ApiDomainMapping", "ApiDomainRecord"}),
    ],
    ids=["no-domain", "domain", "domain-and-zone"],
)
def test_the_custom_domain_exists_only_when_asked(
    template: dict[str, Any], parameters: dict[str, str], created: set[str]
) -> None:
    cfn = resolver(template, **parameters)
    domain_resources = {"ApiDomain", "ApiDomainMapping", "ApiDomainRecord"}
    assert {name for name in domain_resources if cfn.resource_enabled(name)} == created
    outputs = template["Outputs"]
    shown = {name for name in ("DomainUrl", "ApiDomainTarget") if cfn.condition(outputs[name]["Condition"])}
    assert shown == ({"DomainUrl", "ApiDomainTarget"} if created else set())
    if created:
        assert cfn.resolve(outputs["DomainUrl"]["Value"]) == "https://auth.example.com"


def test_the_domain_serves_this_api(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    domain = resources["ApiDomain"]["Properties"]
    assert domain["DomainName"] == {"Ref": "DomainName"}
    (configuration,) = domain["DomainNameConfigurations"]
    assert configuration["CertificateArn"] == {"Ref": "CertificateArn"}
    assert configuration["EndpointType"] == "REGIONAL" and configuration["SecurityPolicy"] == "TLS_1_2"
    mapping = resources["ApiDomainMapping"]["Properties"]
    assert mapping["ApiId"] == {"Ref": "HttpApi"} and mapping["DomainName"] == {"Ref": "ApiDomain"}
    assert "ApiMappingKey" not in mapping  # at the root: the issuer is https://<domain>, no path
    record = resources["ApiDomainRecord"]["Properties"]
    assert record["Name"] == {"Ref": "DomainName"} and record["HostedZoneId"] == {"Ref": "HostedZoneId"}
    assert record["AliasTarget"]["DNSName"] == {"Fn::GetAtt": ["ApiDomain", "RegionalDomainName"]}
    rules = template["Rules"]["CertificateForDomain"]
    assert rules["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "DomainName"}, ""]}]}


@pytest.mark.parametrize(
    ("parameters", "issuer"),
    [
        ({}, ""),  # the API's own URL, from each request
        (DOMAIN, "https://auth.example.com"),
        ({**DOMAIN, "Issuer": "https://login.example.org"}, "https://login.example.org"),
        ({"Issuer": "https://login.example.org"}, "https://login.example.org"),
    ],
    ids=["no-domain", "domain", "domain-and-issuer", "issuer"],
)
def test_the_issuer_defaults_to_the_domain(
    template: dict[str, Any], parameters: dict[str, str], issuer: str
) -> None:
    cfn = resolver(template, **parameters)
    for spec in functions(template):
        assert cfn.string(spec.environment["ISSUER"]) == issuer, spec.logical_id


@pytest.mark.parametrize(
    "host",
    ["auth.example.com", "abc123defg.execute-api.eu-west-1.amazonaws.com"],
    ids=["domain", "execute-api"],
)
def test_with_a_domain_every_request_gets_its_issuer(
    template: dict[str, Any], api: Api, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    """ISSUER as the template sets it with a domain: tokens and metadata name the domain, whichever
    address the request came to (without it, the issuer would follow the request's host)."""
    from authcore import runtime

    monkeypatch.setenv(
        "ISSUER",
        resolver(template, **DOMAIN).string(
            template["Globals"]["Function"]["Environment"]["Variables"]["ISSUER"]
        ),
    )
    runtime.reset()
    result = api.call("GET", "/.well-known/oauth-authorization-server", domain=host)
    assert result.status == 200, result.text
    metadata = result.json()
    assert metadata["issuer"] == "https://auth.example.com"
    assert metadata["token_endpoint"] == "https://auth.example.com/oauth/token"
    started = api.call("POST", "/oauth/device/code", form={"client_id": "demo-cli"}, domain=host).json()
    assert started["verification_uri"] == "https://auth.example.com/device"


def test_without_issuer_a_request_to_the_domain_names_the_domain(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The functions' own fallback (ISSUER empty: the request's host, the $default stage adds no path)
    gives the same issuer through the domain's root mapping."""
    from authcore import runtime

    monkeypatch.setenv("ISSUER", "")
    runtime.reset()
    result = api.call("GET", "/.well-known/oauth-authorization-server", domain="auth.example.com")
    assert result.json()["issuer"] == "https://auth.example.com"


# ---------------------------------------------------------------- sam validate


def test_sam_validate_lint_passes_with_every_optional_parameter_set(tmp_path: Path) -> None:
    """`sam validate` checks the template as it is (no --parameter-overrides): a copy whose optional
    parameters default to set values. Unset, they are the template itself (test_template.py)."""
    text = TEMPLATE.read_text()
    for name, value in OPTIONAL_SET.items():
        pattern = re.compile(rf'(\n  {name}:\n    Type: String\n    Default: )""')
        text, count = pattern.subn(lambda m: f'{m.group(1)}"{value}"', text)  # noqa: B023
        assert count == 1, name
    variant = tmp_path / "template.yaml"
    variant.write_text(text)
    assert load_template(variant)["Parameters"]["DomainName"]["Default"] == DOMAIN["DomainName"]
    result: subprocess.CompletedProcess[str] = sam("validate", "--lint", "--template", str(variant))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr
