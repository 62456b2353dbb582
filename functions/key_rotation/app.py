"""Secrets Manager rotation function for the signing key set (no HTTP route)."""

from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from authcore import keyrotation, runtime
from authcore.observability import logger

_sm = boto3.client("secretsmanager", config=runtime.BOTO_CONFIG)
_events = boto3.client("events", config=runtime.BOTO_CONFIG)  # keys.rotated, at finishSecret


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    logger.info("rotation step", extra={"step": event.get("Step")})
    keyrotation.rotation_step(_sm, event, runtime.settings().access_token_ttl_seconds, events=_events)
