"""The whole lifecycle as a stateful model test: a hypothesis state machine (tests/support/model.py) drives
the real handlers on moto, with faults injected at the boto3 boundary and the service's clock moved by
the test, and checks the model's invariants against the table after every step.

Bounded here (about 2,000 steps, derandomized); `make soak` (mk/soak.mk) runs the same machine for
SOAK_STEPS steps with a random seed, SOAK_SEED=N repeats one. MODEL_NO_SHRINK=1 reports the first failure
as found, without shrinking it (quicker when a change breaks many things at once).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from authcore import runtime, tokens
from authcore.observability import logger
from tests.conftest import Api, LogCapture
from tests.support import aws
from tests.support.model import (
    DEVICE_LIMIT,
    DEVICE_WINDOW,
    STATS,
    HmacSpy,
    Stats,
    World,
    hmac_master,
    machine_for,
)

SOAK_STEPS = int(os.environ.get("SOAK_STEPS") or 0)
STEPS_PER_EXAMPLE = 100 if SOAK_STEPS else 50
EXAMPLES = math.ceil(SOAK_STEPS / STEPS_PER_EXAMPLE) if SOAK_STEPS else 40
NO_SHRINK = bool(os.environ.get("MODEL_NO_SHRINK"))
MUST_REACH = {  # outcomes (tests/support/model.py, Expect.label) every run must have reached
    "started", "approved", "denied", "pending", "slow_down", "issued", "exchange_resent", "rotated",
    "grace_same_successor", "reuse_detected", "wider_scope_refused", "family_revoked",
    "refresh_refused_revoked_or_expired", "already_decided", "verify_not_found", "poll_denied", "code_used",
    "code_expired", "code_of_another_client", "no_membership", "verify_rate_limited",
    "issued(answer lost)", "rotated(answer lost)",
}  # fmt: skip


@pytest.fixture
def world(
    account: aws.Seed,
    monkeypatch: pytest.MonkeyPatch,
    captured_logs: LogCapture,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[World]:
    # The log lines still reach `captured_logs` (checked for errors and secrets); not the terminal.
    handlers = [h for h in logger._logger.handlers if not isinstance(h, logging.StreamHandler)]
    monkeypatch.setattr(logger._logger, "handlers", handlers)
    monkeypatch.setattr(logger._logger, "propagate", False)  # nor pytest's capture (memory, in a soak)
    # Clients cached for the whole run, as a warm execution environment has them: the budget counts
    # the calls a request makes, not a cache's refills.
    monkeypatch.setenv("CLIENT_CACHE_SECONDS", "86400")
    monkeypatch.setenv("DEVICE_AUTHORIZATIONS_PER_IP", str(DEVICE_LIMIT))  # low, so that the model reaches it
    monkeypatch.setenv("DEVICE_AUTHORIZATIONS_WINDOW_SECONDS", str(DEVICE_WINDOW))
    # the per-client counter (a random shard per request) is tested in test_sessions.py; the model keeps
    # to the per-address one, whose item it can predict
    monkeypatch.setenv("DEVICE_AUTHORIZATIONS_PER_CLIENT", "0")
    runtime.reset()
    api = Api()
    api.device_code()
    api.device_code("backend", client_secret=account.confidential_secret)
    spy = HmacSpy(hmac_master())
    monkeypatch.setattr(tokens, "hmac", spy)  # an instrument: counts the HMACs tokens.py computes
    capsys.readouterr()
    yield World(seed=account, spy=spy, logs=captured_logs, drain=capsys.readouterr)


@pytest.mark.timeout(0 if SOAK_STEPS else 1200)  # a failure is shrunk to its shortest run: minutes
def test_the_lifecycle_model(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    STATS.__dict__.update(Stats().__dict__)
    try:
        run_state_machine_as_test(
            machine_for(world),
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS_PER_EXAMPLE,
                deadline=None,
                derandomize=not SOAK_STEPS,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                # no explain phase: tracing every line of thousands of requests takes longer than the run
                phases=[Phase.explicit, Phase.reuse, Phase.generate] + ([] if NO_SHRINK else [Phase.shrink]),
            ),
        )
    finally:
        with capsys.disabled():
            print(f"\n{STATS.summary()}")
    if SOAK_STEPS and SOAK_STEPS < 2000:
        return  # too short a soak to promise the coverage below
    # The run explored what it is meant to: a run that never reaches these would pass without testing.
    assert STATS.steps >= EXAMPLES * STEPS_PER_EXAMPLE * 0.75, STATS.summary()  # hypothesis makes a few short
    assert STATS.faults_answered > 0 and STATS.answers_lost > 0, STATS.summary()
    assert STATS.max_generation >= 20, STATS.summary()
    reached = {name for name, count in STATS.outcomes.items() if count}
    assert reached >= MUST_REACH, f"never reached: {sorted(MUST_REACH - reached)}"
    for (
        client,
        costs,
    ) in STATS.rotation_costs.items():  # one client's rotation costs the same at every generation
        assert len(set(costs.values())) == 1, (client, costs)


# ---------------------------------------------------------------- what the model found


def test_a_retried_attempt_reservation_counts_once(api: Api, account: aws.Seed) -> None:
    """Found by the model: a reservation of a look-up (then a plain ADD) whose answer was lost and
    retried by botocore counted twice, so with one attempt left even the right code was refused. The
    window now holds the look-ups' ids, and the retry finds its own."""
    started = api.device_code()
    for _ in range(9):  # nine wrong codes: one attempt of ten left
        wrong = api.call(
            "POST",
            "/oauth/device/verify",
            body={"user_code": "BBBB-BBBB", "decision": "approve"},
            claims=account.user,
        )
        assert wrong.status == 404, wrong.text
    with aws.lose_answers("UpdateItem", times=1) as lost:  # the reservation: applied, answer lost, retried
        result = api.approve(started["user_code"], account.user)
    assert lost.lost == 1
    assert result.status == 200 and result.json() == {"status": "approved"}, result.text
