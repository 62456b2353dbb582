"""Deliberately broken variants of our storage, installed in a worker environment by the race tests'
own self-checks, to show that those tests fail when the code is wrong. Never used to make a test pass."""

from __future__ import annotations

import time
from typing import Any

from authcore import store as store_module
from authcore import tokens


def non_conditional_redeem() -> None:
    """Read, check in Python, then write without a condition: the classic check-then-act race."""

    def redeem(self: store_module.Store, grant_id: str, **kw: Any) -> store_module.Grant:
        grant = self.get_grant(grant_id)
        if (
            grant is None
            or grant.status != "approved"
            or grant.device_code_digest != kw["device_code_digest"]
        ):
            raise store_module.Rejected(grant)
        time.sleep(0.5)  # widen the window (the serialized endpoint queues the other readers)
        return self._update_grant(
            grant_id,
            "SET #s = :issued, rt_digest = :rtd, rt_generation = :one, rt_rotated_at = :now, "
            "family_expires_at = :fexp",
            "attribute_exists(pk)",
            store_module._values(
                issued="issued", rtd=kw["refresh_digest"], one=1, now=kw["now"], fexp=kw["family_expires_at"]
            ),
            {"#s": "status"},
        )

    store_module.Store.redeem_device_code = redeem  # type: ignore[method-assign]


def random_successor() -> None:
    """A rotation that mints a fresh random successor each time: not idempotent."""

    def successor(self: tokens.Hmac, refresh_token: str) -> str:
        grant_id = refresh_token.split("_", 2)[1]
        return tokens.new_secret_token(tokens.REFRESH_TOKEN_PREFIX, grant_id)

    tokens.Hmac.successor = successor  # type: ignore[method-assign]
