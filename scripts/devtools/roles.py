"""Granting (or taking away) a role of an existing user, straight in the users table: how
the first administrator is made on a deployment (scripts/grant_role.py), and the admin
`make dev` seeds (scripts/local_api.py).
"""

import re

import boto3
from botocore.exceptions import ClientError

ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")


def _username(username):
    username = username.lower() if username.isascii() else username
    if not USERNAME.match(username):
        raise ValueError(f"{username!r} is not a valid username")
    return username


def _update_user(table, username, endpoint, **update):
    """One update of a user item (it has a user_id: never a throttle or id item)."""
    client = boto3.client("dynamodb", endpoint_url=endpoint) if endpoint else boto3.client("dynamodb")
    try:
        return client.update_item(
            TableName=table,
            Key={"username": {"S": username}},
            ConditionExpression="attribute_exists(username) AND attribute_exists(user_id)",
            ReturnValues="ALL_NEW",
            **update,
        )
    except ClientError as e:
        if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise LookupError(f"no user {username!r} in {table}") from None
        raise


def enable_user(table, username, endpoint=None):
    """Enables a disabled user, as POST /admin/users/{username}/enable does: how an
    administrator who was disabled (or the last one) is let back in. Its old sessions stay
    dead. Raises LookupError when there is no such user."""
    _update_user(table, _username(username), endpoint, UpdateExpression="REMOVE disabled")


def change_role(table, username, role, remove=False, endpoint=None):
    """Adds or removes `role`; returns the user's roles after. Raises LookupError when there
    is no such user, ValueError for a malformed name or role."""
    username = _username(username)
    if not ROLE.match(role):
        raise ValueError(f"{role!r} is not a valid role name (^[a-z][a-z0-9_-]{{0,31}}$)")
    out = _update_user(
        table,
        username,
        endpoint,
        UpdateExpression=("DELETE" if remove else "ADD") + " #roles :role",
        ExpressionAttributeNames={"#roles": "roles"},
        ExpressionAttributeValues={":role": {"SS": [role]}},
    )
    return sorted(out["Attributes"].get("roles", {}).get("SS", []))
