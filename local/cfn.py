"""Resolve CloudFormation intrinsic functions in template.yaml against local resources.

The local stack reads the template as it is (`local.template.load_template`) and needs concrete values
where the template says `!Ref Table`, `!Sub https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}`
or `!If [HasAllowedOrigins, ...]`. `Resolver` evaluates the intrinsic functions CloudFormation would:
parameters (their defaults, with local overrides), pseudo parameters, the physical ids of the resources
the local stack created, and the template's conditions.

A `Ref` to a resource the local stack did not create resolves to a placeholder (and a warning), so that
adding a resource to the template never stops `make serve`; a value it cannot evaluate at all raises
`TemplateError`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any, Final

from local.template import TemplateError


class _NoValue:
    """`AWS::NoValue`: the property (or list item) is removed."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Final = _NoValue()
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


class Resolver:
    def __init__(
        self,
        template: dict[str, Any],
        *,
        parameters: Mapping[str, str] | None = None,
        refs: Mapping[str, str] | None = None,
        attributes: Mapping[tuple[str, str], str] | None = None,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        stack_name: str = "local",
    ) -> None:
        self.template = template
        self.parameters = self._parameters(template, parameters or {})
        self.refs = dict(refs or {})
        self.attributes = dict(attributes or {})
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self._conditions: dict[str, bool] = {}
        self._warned: set[str] = set()

    @staticmethod
    def _parameters(template: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
        declared = template.get("Parameters") or {}
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise TemplateError(f"template.yaml declares no parameter {', '.join(unknown)}")
        values: dict[str, str] = {}
        for name, spec in declared.items():
            if name in overrides:
                values[name] = overrides[name]
            elif isinstance(spec, dict) and "Default" in spec:
                values[name] = _scalar(spec["Default"])
        return values

    # ------------------------------------------------------------ conditions

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"no condition {name!r} in template.yaml")
            self._conditions[name] = bool(self._boolean(conditions[name]))
        return self._conditions[name]

    def _boolean(self, value: Any) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in arg)
                return _scalar(left) == _scalar(right)
            if key == "Fn::Not":
                return not self._boolean(arg[0])
            if key == "Fn::And":
                return all(self._boolean(item) for item in arg)
            if key == "Fn::Or":
                return any(self._boolean(item) for item in arg)
        if isinstance(value, bool):
            return value
        raise TemplateError(f"cannot evaluate condition {value!r}")

    def resource_enabled(self, logical_id: str) -> bool:
        resource = self.template["Resources"][logical_id]
        name = resource.get("Condition") if isinstance(resource, dict) else None
        return True if name is None else self.condition(name)

    # ------------------------------------------------------------ values

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic function evaluated; `NO_VALUE` items and keys are dropped."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._intrinsic(key, arg)
        out = {}
        for key, item in value.items():
            resolved = self.resolve(item)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def string(self, value: Any) -> str:
        """A resolved value as an environment variable holds it."""
        return _scalar(self.resolve(value))

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self._ref(arg)
        if key == "Fn::GetAtt":
            resource, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self._get_att(str(resource), str(attribute))
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
            return self._boolean({key: arg})
        if key == "Fn::Split":
            delimiter, text = arg
            return _scalar(self.resolve(text)).split(delimiter)
        if key == "Fn::Join":
            delimiter, items = arg
            return str(delimiter).join(_scalar(item) for item in self.resolve(items))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(_scalar(self.resolve(index)))]
        raise TemplateError(f"the local stack cannot evaluate {key}")

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.template["Resources"]:
            self._warn(f"!Ref {name}: no local resource; using a placeholder")
            return f"local-{name}"
        raise TemplateError(f"!Ref {name}: no such parameter or resource")

    def _get_att(self, resource: str, attribute: str) -> str:
        if (resource, attribute) in self.attributes:
            return self.attributes[(resource, attribute)]
        if resource in self.template["Resources"]:
            self._warn(f"!GetAtt {resource}.{attribute}: no local value; using a placeholder")
            return f"arn:aws:local:{self.pseudo['AWS::Region']}:{self.pseudo['AWS::AccountId']}:{resource}/{attribute}"
        raise TemplateError(f"!GetAtt {resource}.{attribute}: no such resource")

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return _scalar(self.resolve(variables[name]))
            if "." in name and name.split(".", 1)[0] in self.template["Resources"]:
                resource, attribute = name.split(".", 1)
                return self._get_att(resource, attribute)
            return _scalar(self._ref(name))

        return _SUB_VAR.sub(replace, text).replace("${!", "${")

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            print(f"local stack: {message}", file=sys.stderr)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TemplateError(f"expected a scalar, got {value!r}")
