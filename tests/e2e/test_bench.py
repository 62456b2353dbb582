"""The load benchmark (bench/load.py) against a running stack, tiny: it names the organization when the
person belongs to several (issue #12 item 6), and every error it meets is counted once, the same in
the console and in the JSON, with its kinds. Not a timed test: no figure is asserted."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from authcore.store import Membership, Organization, Store
from bench import load
from local.stack import StackInfo
from tests.e2e.conftest import NewUser


def info_file(stack: StackInfo, tmp_path: Path, user: Any, organization: str | None) -> Path:
    info = stack.to_dict()
    info["demo"] = {"username": user.username, "password": user.password, "organization_id": organization}
    path = tmp_path / "serve.json"
    path.write_text(json.dumps(info), encoding="utf-8")
    return path


def run(
    stack: StackInfo, path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, Any, str]:
    out = tmp_path / f"{uuid.uuid4().hex}.json"
    argv = ["--api-url", stack.api_url, "--info-file", str(path), "--flows", "2", "--refreshes", "2",
            "--workers", "2", "--time-limit", "120", "--output", str(out)]  # fmt: skip
    code = load.main(argv)
    return code, json.loads(out.read_text(encoding="utf-8")), capsys.readouterr().out


def test_a_person_in_two_organizations_benchmarks_cleanly_and_errors_are_counted_once(
    stack: StackInfo, new_user: NewUser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = new_user()  # a member of the demo organization
    store = Store(
        boto3.client("dynamodb", endpoint_url=stack.aws_endpoint_url, region_name=stack.region,
                     aws_access_key_id="testing", aws_secret_access_key="testing"),
        stack.table_name,
    )  # fmt: skip
    other = f"bench-{uuid.uuid4().hex[:8]}"
    store.put_organization(Organization(org_id=other, name="Bench Second Org"))
    store.put_membership(
        Membership(user_id=user.sub, org_id=other, org_name="Bench Second Org", role="member")
    )

    code, result, printed = run(
        stack, info_file(stack, tmp_path, user, stack.demo.organization_id), tmp_path, capsys
    )
    assert code == 0, printed
    assert result["errors"] == 0 and result["phases"]["device_flows"]["completed"] == 2, result

    # Without naming one, every approval is 422 (the person must say which organization): each failed
    # request counted once, the console and the JSON agree, and the kinds are printed.
    code, result, printed = run(stack, info_file(stack, tmp_path, user, None), tmp_path, capsys)
    assert code == 1
    kinds = result["error_kinds"]
    assert set(kinds) == {"422 validation_error"} and result["errors"] == sum(kinds.values()) >= 2
    assert f"errors: {result['errors']}" in printed and "422 validation_error" in printed
