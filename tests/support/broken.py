"""Deliberately broken variants of our code, installed in the worker processes by the race tests' own
negative controls, to show that those tests fail when the code is wrong. Never used to make a test pass.

Each variant forces its bad interleaving with a barrier shared by the worker processes
(tests/support/barrier.py), never with a sleep, so the negative control fails the same way every time.
A variant is installed with the workers' ``setup`` hook, which runs ``module:function`` in each worker;
the function's name carries the barrier's address (module ``__getattr__`` below):

    with BarrierServer(parties=8, arrivals=30) as barrier:
        Environments(env, setup=broken.setup("check_then_act_redeem", barrier), ...)
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from authcore import errors, tokens
from authcore import store as store_module
from authcore.store import Grant, Quota, QuotaExceeded, Rejected, Store, _values
from tests.support.barrier import Barrier, BarrierServer


def check_then_act_redeem(barrier: Barrier) -> None:
    """Device-code redemption as a check-then-act: read the grant, let every racer of the round read it
    too (barrier), check ``approved`` in Python, then write without a condition. And the first refresh
    token is a fresh random one each time (not derived from the device code): so each racer that passed
    the check starts a family of its own, and the last write wins."""

    def redeem(
        self: Store,
        grant_id: str,
        *,
        device_code_digest: str,
        client_id: str,
        now: int,
        refresh_digest: str | None,
        family_expires_at: int,
        ttl: int,
        **policy: Any,  # the client's lifetimes (access_ttl, idle_timeout, rotation_grace): not the race
    ) -> Grant:
        grant = self.get_grant(grant_id)
        barrier.wait()  # every racer of the round has read the grant; none has written
        if (
            grant is None
            or grant.status != "approved"
            or not tokens.same_digest(grant.device_code_digest, device_code_digest)
            or grant.client_id != client_id
            or grant.expires_at <= now
        ):
            raise Rejected(grant)
        update = "SET #s = :issued, issued_at = :now, family_expires_at = :fexp, #ttl = :ttl"
        values = _values(issued="issued", now=now, fexp=family_expires_at, ttl=ttl)
        if refresh_digest is not None:
            update += ", rt_digest = :rtd, rt_generation = :one, rt_rotated_at = :now"
            values |= _values(rtd=refresh_digest, one=1)
        return self._update_grant(
            grant_id, update, "attribute_exists(pk)", values, {"#s": "status", "#ttl": "ttl"}
        )

    def first_refresh_token(self: tokens.Hmac, device_code: str, grant_id: str, client_id: str) -> str:
        return self._mint(grant_id, 1, client_id, secrets.token_bytes(32))

    Store.redeem_device_code = redeem  # type: ignore[method-assign]
    tokens.Hmac.first_refresh_token = first_refresh_token  # type: ignore[method-assign]


def random_successor(barrier: Barrier) -> None:
    """A rotation that mints a fresh random successor each time (not idempotent); every racer of a round
    has computed its successor before any of them writes (barrier)."""

    def successor(self: tokens.Hmac, token: tokens.RefreshToken) -> str:
        minted = self._mint(token.grant_id, token.generation + 1, token.client_id, secrets.token_bytes(32))
        barrier.wait()
        return minted

    tokens.Hmac.successor = successor  # type: ignore[method-assign]


def check_then_increment_verify(barrier: Barrier) -> None:
    """The wrong-code limit as a check-then-act: read the counter, let every racer of the round read it
    too (barrier), then increment without a condition if the count read was under the limit."""

    def reserve(self: Store, user_id: str, window: int, limit: int, ttl: int, request_id: str) -> bool:
        attempts = self.verify_attempts(user_id, window)
        barrier.wait()  # every racer of the round has read the counter; none has counted
        if attempts >= limit:
            return False
        self.client.update_item(
            TableName=self.table,
            Key=store_module._to_ddb({"pk": f"RATE#verify#{user_id}", "sk": f"WINDOW#{window}"}),
            UpdateExpression="ADD attempt_ids :rid SET #ttl = :ttl",
            ExpressionAttributeValues=_values(rid={request_id}, ttl=ttl),
            ExpressionAttributeNames={"#ttl": "ttl"},
        )
        return True

    Store.reserve_verify_attempt = reserve  # type: ignore[method-assign]


def rotate_then_undo(barrier: Barrier) -> None:
    """The shape before commit cb57551: a refresh rotated first and checked the asked scope after the
    write; refusing, it undid the rotation. The barrier (2 parties, 2 rounds) forces the interleaving
    that lost a session: the refused refresh of T rotates T -> S; a plain refresh of T then runs whole
    (T is the previous token within the grace: it is answered S); only then is the rotation undone, so
    T is current again and S, which the plain refresh handed out, is dead."""
    rotate = Store.rotate_refresh

    def broken(
        self: Store,
        grant_id: str,
        *,
        presented_digest: str,
        generation: int,
        successor_digest: str,
        client_id: str,
        scopes: list[str],
        now: int,
    ) -> Grant:
        kw: dict[str, Any] = {
            "presented_digest": presented_digest,
            "generation": generation,
            "successor_digest": successor_digest,
            "client_id": client_id,
            "now": now,
        }
        if not scopes:  # the plain refresh
            barrier.wait()  # 1: the refused refresh has rotated
            try:
                return rotate(self, grant_id, scopes=[], **kw)
            finally:
                barrier.wait()  # 2: the plain refresh has its answer
        grant = rotate(self, grant_id, scopes=[], **kw)  # the scope is not in the condition
        barrier.wait()  # 1
        barrier.wait()  # 2
        granted = grant.scope_list if grant.scope_list is not None else grant.scope.split()
        if any(s not in granted for s in scopes):
            with contextlib.suppress(Rejected):  # undo, as store.undo_rotation did: if nothing moved
                self._update_grant(
                    grant_id,
                    "SET rt_digest = :d, rt_generation = rt_generation - :one REMOVE rt_prev_digest",
                    "rt_digest = :s AND rt_prev_digest = :d",
                    _values(d=presented_digest, s=successor_digest, one=1),
                    {},
                )
            raise errors.InvalidScope("The requested scope exceeds what was granted.")
        return grant

    Store.rotate_refresh = broken  # type: ignore[method-assign, assignment]


def check_then_count_device(barrier: Barrier) -> None:
    """The per-address limit of device authorization as a check-then-act: read the address's counter,
    let every racer of the round read it too (barrier), refuse in Python if it was at the limit, else
    write the request and count it without the limit in the write's condition."""
    create = Store.create_device_grant

    def checked_then_counted(self: Store, grant: Grant, now: int, quotas: Sequence[Quota] = ()) -> None:
        read = []
        for quota in quotas:
            item = self._get(f"RATE#{quota.counter}", f"WINDOW#{quota.window}")
            read.append(int(item["requests"]["N"]) if item else 0)
        barrier.wait()  # every racer of the round has read the counters; none has counted
        for quota, count in zip(quotas, read, strict=True):
            if count >= quota.limit:
                raise QuotaExceeded(quota)
        create(self, grant, now, [dataclasses.replace(q, limit=2**31 - 1) for q in quotas])

    Store.create_device_grant = checked_then_counted  # type: ignore[method-assign]


VARIANTS: dict[str, Callable[[Barrier], None]] = {
    f.__name__: f
    for f in (
        check_then_act_redeem,
        random_successor,
        check_then_increment_verify,
        rotate_then_undo,
        check_then_count_device,
    )
}


def setup(variant: str, barrier: BarrierServer) -> str:
    """The workers' ``setup`` ("module:function") that installs ``variant`` with ``barrier``."""
    if variant not in VARIANTS:
        raise ValueError(f"no broken variant {variant!r}")
    return f"{__name__}:{variant}@{barrier.spec}"


def __getattr__(name: str) -> Callable[[], None]:
    """``<variant>@<barrier spec>``: a function that installs the variant with that barrier."""
    variant, at, spec = name.partition("@")
    if not at or variant not in VARIANTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    install, barrier = VARIANTS[variant], Barrier(spec)
    return lambda: install(barrier)
