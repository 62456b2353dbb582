"""The table's stream -> security events on EventBridge (no HTTP route). See docs/events.md.

Invoked by the stream's event source mapping with a batch of records: reports the records whose events
did not all get on the bus (ReportBatchItemFailures), which Lambda retries and finally sends to the
dead-letter queue. Invoked by an operator with a dead-letter message: publishes that batch again.
"""

from collections.abc import Mapping
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from authcore import runtime, security_events
from authcore.observability import logger

_processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@cache
def _events() -> Any:
    """EventBridge, built by the first invocation (as the HTTP functions' clients are: authcore.runtime),
    not at init: a client's service model is about a tenth of this function's cold start."""
    return boto3.client("events", config=runtime.BOTO_CONFIG)


@cache
def _streams() -> Any:
    """Only a replay reads the stream itself (the event source mapping reads it otherwise)."""
    return boto3.client("dynamodbstreams", config=runtime.BOTO_CONFIG)


def _prime() -> None:
    """Before a SnapStart snapshot: EventBridge's client, which every invocation uses, so that an
    environment restored from the snapshot does not build it on its first batch."""
    _events()


def _after_restore() -> None:
    """After a restore: the clients are kept, their connections are not (as authcore.runtime does)."""
    for built in (_events, _streams):
        if built.cache_info().currsize:
            built().close()


runtime.on_snapstart(before=_prime, after=_after_restore)


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    options = security_events.options()
    if security_events.DEAD_LETTER_KEY in event:
        return security_events.replay(_streams(), _events(), event, options)
    outcome = security_events.publish(_events(), event.get("Records", []), options)
    return process_partial_response(
        event=event, record_handler=outcome.settle, processor=_processor, context=context
    )
