"""The local DynamoDB API the tests run against keeps the promises of DynamoDB that the
code relies on (scripts/moto_dynamodb.py adds the ones moto lacks): a TransactWriteItems
retried with its ClientRequestToken (what the SDK does when an answer is late) answers as
the first call did without applying it twice, and a token is bound to its request.
"""

import os
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def client():
    return boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])


def create(key, marker):
    return [{"Put": {
        "TableName": os.environ["USERS_TABLE"],
        "Item": {"username": {"S": key}, "marker": {"S": marker}},
        "ConditionExpression": "attribute_not_exists(username)",
    }}]


def test_a_transaction_retried_with_its_token_answers_as_the_first_and_applies_once(client):
    key, token = f"idem-{uuid.uuid4().hex}", uuid.uuid4().hex
    client.transact_write_items(TransactItems=create(key, "first"), ClientRequestToken=token)
    # The same call again (a retried attempt): success, nothing applied a second time.
    client.transact_write_items(TransactItems=create(key, "first"), ClientRequestToken=token)
    item = client.get_item(TableName=os.environ["USERS_TABLE"], Key={"username": {"S": key}}, ConsistentRead=True)["Item"]
    assert item["marker"] == {"S": "first"}
    # Under another token the same request is a new one, and its condition refuses it.
    with pytest.raises(ClientError) as refused:
        client.transact_write_items(TransactItems=create(key, "first"), ClientRequestToken=uuid.uuid4().hex)
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"


def test_a_used_token_with_another_request_is_refused(client):
    token = uuid.uuid4().hex
    client.transact_write_items(TransactItems=create(f"idem-{uuid.uuid4().hex}", "a"), ClientRequestToken=token)
    other = f"idem-{uuid.uuid4().hex}"
    with pytest.raises(ClientError) as refused:
        client.transact_write_items(TransactItems=create(other, "b"), ClientRequestToken=token)
    assert refused.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert "Item" not in client.get_item(TableName=os.environ["USERS_TABLE"], Key={"username": {"S": other}}, ConsistentRead=True)


def test_a_refused_transaction_is_not_remembered(client):
    key, token = f"idem-{uuid.uuid4().hex}", uuid.uuid4().hex
    client.put_item(TableName=os.environ["USERS_TABLE"], Item={"username": {"S": key}})
    with pytest.raises(ClientError):
        client.transact_write_items(TransactItems=create(key, "x"), ClientRequestToken=token)
    client.delete_item(TableName=os.environ["USERS_TABLE"], Key={"username": {"S": key}})
    # The key is free now: the same token's retry is evaluated afresh, and applies.
    client.transact_write_items(TransactItems=create(key, "x"), ClientRequestToken=token)
    assert client.get_item(TableName=os.environ["USERS_TABLE"], Key={"username": {"S": key}}, ConsistentRead=True)["Item"]["marker"] == {"S": "x"}
