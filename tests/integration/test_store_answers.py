"""The store reads DynamoDB's successful JSON answers itself (store.read_json_answer, for speed:
bench/README.md). Every answer it reads so must equal botocore's own parse of it, for every operation
it takes, every attribute type, and answers it must leave to botocore (binary values, errors)."""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

from authcore import store
from tests.conftest import TABLE
from tests.support import aws
from tests.support.aws import Seed

ITEM = {
    "pk": {"S": "TEST#answers"},
    "sk": {"S": "A"},
    "text": {"S": 'quotes " and \\ and "B": inside, ünïcödé'},
    "number": {"N": "1795000000"},
    "big": {"N": "12345678901234567890123456789012345678"},
    "flag": {"BOOL": True},
    "nothing": {"NULL": True},
    "list": {"L": [{"S": "a"}, {"N": "2"}, {"M": {"k": {"BOOL": False}}}]},
    "map": {"M": {"inner": {"L": []}, "n": {"N": "-3"}}},
    "strings": {"SS": ["x", "y"]},
    "numbers": {"NS": ["1", "2"]},
}
BINARY = [
    {"pk": {"S": "TEST#answers"}, "sk": {"S": "B"}, "blob": {"B": b"\x00\xff"}},
    {"pk": {"S": "TEST#answers"}, "sk": {"S": "BS"}, "blobs": {"BS": [b"\x01"]}},
]


def clients() -> tuple[Any, Any]:
    """botocore's parse (plain) and the store's (a client the Store registered its hook on)."""
    plain = boto3.client("dynamodb", region_name=aws.REGION)
    ours = boto3.client("dynamodb", region_name=aws.REGION)
    store.Store(ours, TABLE)
    return plain, ours


def without_metadata(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def calls(table: str) -> list[tuple[str, dict[str, Any]]]:
    key = {"pk": ITEM["pk"], "sk": ITEM["sk"]}
    return [
        ("get_item", {"TableName": table, "Key": key, "ConsistentRead": True}),
        ("get_item", {"TableName": table, "Key": {"pk": {"S": "TEST#none"}, "sk": {"S": "A"}}}),
        *[("get_item", {"TableName": table, "Key": {"pk": b["pk"], "sk": b["sk"]}}) for b in BINARY],
        (
            "query",
            {
                "TableName": table,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": ITEM["pk"]},
            },
        ),
        ("batch_get_item", {"RequestItems": {table: {"Keys": [key]}}}),
        ("scan", {"TableName": table, "Limit": 1}),
    ]


def test_every_read_answer_equals_botocores(account: Seed) -> None:
    plain, ours = clients()
    plain.put_item(TableName=TABLE, Item=ITEM)
    for item in BINARY:
        plain.put_item(TableName=TABLE, Item=item)
    for operation, kwargs in calls(TABLE):
        expected = without_metadata(getattr(plain, operation)(**kwargs))
        got = getattr(ours, operation)(**kwargs)
        assert without_metadata(got) == expected, operation
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_write_answers_equal_botocores(account: Seed) -> None:
    plain, ours = clients()
    for client in (plain, ours):
        client.put_item(TableName=TABLE, Item=ITEM)
    answers = []
    for client in (plain, ours):
        answers.append(
            without_metadata(
                client.update_item(
                    TableName=TABLE,
                    Key={"pk": ITEM["pk"], "sk": ITEM["sk"]},
                    UpdateExpression="SET #n = #n + :one",
                    ExpressionAttributeNames={"#n": "number"},
                    ExpressionAttributeValues={":one": {"N": "1"}},
                    ReturnValues="ALL_NEW",
                )
            )
        )
    assert answers[1]["Attributes"]["number"] == {"N": "1795000002"}
    answers[0]["Attributes"]["number"] = answers[1]["Attributes"]["number"]
    assert answers[0] == answers[1]


def test_a_refused_write_is_botocores_error_with_its_item(account: Seed) -> None:
    plain, ours = clients()
    plain.put_item(TableName=TABLE, Item=ITEM)
    for client in (plain, ours):
        with pytest.raises(ClientError) as refused:
            client.update_item(
                TableName=TABLE,
                Key={"pk": ITEM["pk"], "sk": ITEM["sk"]},
                UpdateExpression="SET flag = :f",
                ConditionExpression="attribute_not_exists(pk)",
                ExpressionAttributeValues={":f": {"BOOL": False}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
        assert refused.value.response["Item"] == ITEM


def test_binary_answers_are_left_to_botocore() -> None:
    """botocore decodes a binary value's base64: such an answer is not taken whole."""
    for body in (b'{"Item":{"b":{"B":"AP8="}}}', b'{"Item":{"b":{"BS":["AQ=="]}}}'):
        response = {
            "status_code": 200,
            "headers": {"content-type": "application/x-amz-json-1.0"},
            "body": body,
        }
        custom: dict[str, Any] = {}
        store.read_json_answer(response, custom)
        assert custom == {} and response["body"] == body
    for response in (
        {"status_code": 400, "headers": {"content-type": "application/x-amz-json-1.0"}, "body": b"{}"},
        {"status_code": 200, "headers": {"content-type": "application/cbor"}, "body": b"\xa0"},
    ):
        custom = {}
        store.read_json_answer(response, custom)
        assert custom == {}


def test_a_damaged_answer_is_left_to_botocores_checksum_and_retry() -> None:
    """An answer damaged in transit (what DynamoDB's x-amz-crc32 is there to catch) is not JSON: the store
    leaves it to botocore, which finds the checksum wrong and asks again."""
    good = b'{"Item":{"pk":{"S":"a"},"n":{"N":"5"}}}'
    damaged = good[:-3] + b"}X"
    sent: list[bytes] = []

    class Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **_: Any) -> Iterator[bytes]:
            yield self.body

    def answer(request: Any, **_: Any) -> AWSResponse:
        body = damaged if not sent else good
        sent.append(body)
        headers = {
            "content-type": "application/x-amz-json-1.0",
            "x-amz-crc32": str(binascii.crc32(good) & 0xFFFFFFFF),
            "x-amzn-requestid": "r",
        }
        return AWSResponse("http://127.0.0.1:9", 200, headers, Raw(body))

    client = boto3.client(
        "dynamodb",
        region_name=aws.REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
    )
    client.meta.events.register("before-send.dynamodb.GetItem", answer)
    store.Store(client, TABLE)
    got = client.get_item(TableName=TABLE, Key={"pk": {"S": "a"}})
    assert got["Item"] == {"pk": {"S": "a"}, "n": {"N": "5"}}
    assert sent == [damaged, good]


def test_every_write_answer_equals_botocores(account: Seed) -> None:
    """The write operations the store uses, each asked for what it can return (old values, consumed
    capacity, unprocessed items), by botocore's parse and by the store's, from the same starting item."""
    plain, ours = clients()
    key = {"pk": ITEM["pk"], "sk": ITEM["sk"]}
    total = {"ReturnConsumedCapacity": "TOTAL"}
    operations: list[tuple[str, dict[str, Any]]] = [
        ("put_item", {"TableName": TABLE, "Item": ITEM, "ReturnValues": "ALL_OLD", **total}),
        ("delete_item", {"TableName": TABLE, "Key": key, "ReturnValues": "ALL_OLD", **total}),
        ("batch_write_item", {"RequestItems": {TABLE: [{"PutRequest": {"Item": ITEM}}]}, **total}),
        ("transact_write_items", {"TransactItems": [{"Put": {"TableName": TABLE, "Item": ITEM}}], **total}),
        ("transact_get_items", {"TransactItems": [{"Get": {"TableName": TABLE, "Key": key}}], **total}),
        ("get_item", {"TableName": TABLE, "Key": key, **total}),
        ("query", {"TableName": TABLE, "KeyConditionExpression": "pk = :p",
                   "ExpressionAttributeValues": {":p": ITEM["pk"]}, **total}),
    ]  # fmt: skip
    for operation, kwargs in operations:
        answers = []
        for client in (plain, ours):
            plain.put_item(TableName=TABLE, Item=ITEM)  # the same starting item for both
            answers.append(without_metadata(getattr(client, operation)(**kwargs)))
        assert answers[1] == answers[0], operation
