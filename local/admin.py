"""`make admin ARGS="clients list"`: the admin command, pointed at the local stack when the environment
names no table (reads .local/serve.json, written by `make serve`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    info_file = ROOT / ".local" / "serve.json"
    if not os.environ.get("TABLE_NAME"):
        if not info_file.is_file():
            print(
                "error: set TABLE_NAME, KEYS_SECRET_ID and JWKS_SECRET_ID (AWS), or start `make serve` first",
                file=sys.stderr,
            )
            return 2
        info = json.loads(info_file.read_text())
        os.environ.update(
            AWS_ENDPOINT_URL=info["aws_endpoint_url"],
            AWS_REGION=info["region"],
            AWS_DEFAULT_REGION=info["region"],
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            TABLE_NAME=info["table_name"],
            KEYS_SECRET_ID=info["keys_secret_id"],
            JWKS_SECRET_ID=info.get("jwks_secret_id", ""),
        )
    sys.path.insert(0, str(ROOT / "layers"))
    from authcore import admin

    return admin.main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
