"""The floor `bench/cpu.py` compares the functions with: what a token function cannot do without.

Imported as a Lambda function's module would be (its import is the "lean floor script": boto3, pydantic,
pyjwt with cryptography, Powertools' Logger, one DynamoDB client, one pydantic model), and its `handler`
is the "floor handler": parse the JSON body, one conditional UpdateItem through boto3 with
ReturnValues=ALL_NEW, sign one ES256 JWT, dump the JSON answer. Nothing else: no resolver, no
validation, no client look-up, no logging or metrics per request, no retries policy of its own.

Configuration: TABLE_NAME (the table it writes FLOOR# items to) and the usual AWS variables.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from typing import Any

import boto3
import jwt
import pydantic
from aws_lambda_powertools import Logger
from cryptography.hazmat.primitives.asymmetric import ec

logger = Logger(service="floor")
dynamodb = boto3.client("dynamodb")
TABLE = os.environ.get("TABLE_NAME", "floor")


class Answer(pydantic.BaseModel):
    """One pydantic model, defined (its schema built) at import, as a function's envelopes are."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int


@functools.cache
def _signing_key() -> ec.EllipticCurvePrivateKey:
    """One key per process, made on first use (where a function would fetch its key set)."""
    return ec.generate_private_key(ec.SECP256R1())


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body = json.loads(event.get("body") or "{}")
    grant = str(body["grant"])
    now = int(time.time())
    item = dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"FLOOR#{grant}"}, "sk": {"S": "FLOOR"}},
        UpdateExpression="SET generation = if_not_exists(generation, :zero) + :one, used_at = :now",
        ConditionExpression="attribute_not_exists(revoked_at)",
        ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}, ":now": {"N": str(now)}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    claims = {
        "iss": "https://floor.example.test",
        "sub": grant,
        "aud": "https://floor.example.test",
        "iat": now,
        "exp": now + 3600,
        "jti": str(uuid.uuid4()),
        "generation": int(item["generation"]["N"]),
    }
    token = jwt.encode(claims, _signing_key(), algorithm="ES256", headers={"kid": "floor", "typ": "at+jwt"})
    answer = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "cache-control": "no-store"},
        "body": json.dumps(answer),
    }
