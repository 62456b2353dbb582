"""Shell variables for the README's curl examples, against `make serve`'s stack (local only):

    eval "$(.venv/bin/python -m local.session)"

defines
- `API`: the API's URL;
- `ID_TOKEN`: an ID token of the demo user from the stack's user pool (what the verify and sessions
  routes take as `Authorization: Bearer`);
- `RT`, `AT`: the refresh and access token of a new session of the public client (`demo-cli`), signed in
  with the device flow and approved as the demo user, through the API, as the verification page would;
- `BACKEND_ID`, `BACKEND_SECRET`: the confidential client (`demo-backend`), which may introspect.

It reads what `make serve` wrote (.local/serve.json; `--info-file`, or LOCAL_SERVE_INFO). A missing
stack is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from local.stack import DEFAULT_INFO_FILE

TIMEOUT = 10


class Unavailable(Exception):
    """The stack cannot give a session; the message says why, in one line."""


def _call(url: str, *, form: dict[str, str] | None = None, body: Any = None, token: str = "") -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 - local
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:  # noqa: S310 - the local stack's URL
            return json.load(answer)
    except urllib.error.HTTPError as exc:
        raise Unavailable(f"{url} answered {exc.code}: {exc.read().decode(errors='replace')[:200]}") from None
    except OSError as exc:
        raise Unavailable(f"cannot reach {url} ({exc}): is make serve running?") from None


def id_token(info: dict[str, Any]) -> str:
    """The demo user signs in to the stack's user pool (USER_PASSWORD_AUTH on the embedded endpoint)."""
    import boto3

    cognito = boto3.client(
        "cognito-idp",
        endpoint_url=info["aws_endpoint_url"],
        region_name=info["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    try:
        answer = cognito.initiate_auth(
            ClientId=info["user_pool_client_id"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": info["demo"]["username"], "PASSWORD": info["demo"]["password"]},
        )
    except Exception as exc:  # botocore's errors: the endpoint is gone, or the pool is not this one
        raise Unavailable(
            f"the demo user cannot sign in ({type(exc).__name__}): is make serve running?"
        ) from None
    return str(answer["AuthenticationResult"]["IdToken"])


def session(info: dict[str, Any]) -> dict[str, str]:
    api = str(info["api_url"])
    person = id_token(info)
    client_id = str(info["clients"]["public"]["client_id"])
    started = _call(f"{api}/oauth/device/code", form={"client_id": client_id, "scope": "read write"})
    _call(
        f"{api}/oauth/device/verify",
        body={
            "user_code": started["user_code"],
            "decision": "approve",
            "organization_id": info["demo"]["organization_id"],
        },
        token=person,
    )
    tokens = _call(
        f"{api}/auth/device/exchange", body={"device_code": started["device_code"], "client_id": client_id}
    )
    confidential = info["clients"]["confidential"]
    return {
        "API": api,
        "ID_TOKEN": person,
        "RT": str(tokens["refresh_token"]),
        "AT": str(tokens["access_token"]),
        "BACKEND_ID": str(confidential["client_id"]),
        "BACKEND_SECRET": str(confidential["client_secret"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.session", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--info-file",
        type=Path,
        default=Path(os.environ.get("LOCAL_SERVE_INFO") or DEFAULT_INFO_FILE),
        help="what make serve wrote (default .local/serve.json, or LOCAL_SERVE_INFO)",
    )
    args = parser.parse_args(argv)
    try:
        info = json.loads(args.info_file.read_text())
    except (OSError, ValueError):
        print(
            f"error: no local stack: {args.info_file} is missing or unreadable; start make serve first",
            file=sys.stderr,
        )
        return 2
    try:
        variables = session(info)
    except Unavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
