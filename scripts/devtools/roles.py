"""Granting (or taking away) a role of an existing user, straight in the users table: how
the first administrator is made on a deployment (scripts/grant_role.py), and the admin
`make dev` seeds (scripts/local_api.py).
"""

import re

import boto3
from botocore.exceptions import ClientError

ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")


def change_role(table, username, role, remove=False, endpoint=None):
    """Adds or removes `role`; returns the user's roles after. Raises LookupError when there
    is no such user, ValueError for a malformed name or role."""
    username = username.lower() if username.isascii() else username
    if not USERNAME.match(username):
        raise ValueError(f"{username!r} is not a valid username")
    if not ROLE.match(role):
        raise ValueError(f"{role!r} is not a valid role name (^[a-z][a-z0-9_-]{{0,31}}$)")
    client = boto3.client("dynamodb", endpoint_url=endpoint) if endpoint else boto3.client("dynamodb")
    try:
        out = client.update_item(
            TableName=table,
            Key={"username": {"S": username}},
            UpdateExpression=("DELETE" if remove else "ADD") + " #roles :role",
            # Only a user item (it has a user_id), never a throttle or id item.
            ConditionExpression="attribute_exists(username) AND attribute_exists(user_id)",
            ExpressionAttributeNames={"#roles": "roles"},
            ExpressionAttributeValues={":role": {"SS": [role]}},
            ReturnValues="ALL_NEW",
        )
    except ClientError as e:
        if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise LookupError(f"no user {username!r} in {table}") from None
        raise
    return sorted(out["Attributes"].get("roles", {}).get("SS", []))
