"""Grants (or, with --remove, takes away) a role of an existing user, straight in the users
table: how the first administrator is made on a deployment, before anyone can call the
admin routes.

  grant_role.py --table USERS_TABLE [--remove] USERNAME ROLE

USERS_TABLE is the stack output `UsersTableName`. AWS credentials and region come from the
usual places (profile, environment); AWS_ENDPOINT_URL_DYNAMODB points it at a local
DynamoDB. The change applies at once: the authorizer reads the user's roles on every
request (a granted role appears in tokens from the user's next login or refresh; a removed
one stops counting immediately).
"""

import argparse
import re
import sys

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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, help="the users table (stack output UsersTableName)")
    parser.add_argument("--remove", action="store_true", help="take the role away instead")
    parser.add_argument("--endpoint", help="DynamoDB endpoint (default: AWS, or AWS_ENDPOINT_URL_DYNAMODB)")
    parser.add_argument("username")
    parser.add_argument("role")
    args = parser.parse_args()
    try:
        roles = change_role(args.table, args.username, args.role, args.remove, args.endpoint)
    except ValueError as e:
        print(f"grant_role: {e}", file=sys.stderr)
        return 2
    except LookupError as e:
        print(f"grant_role: {e}", file=sys.stderr)
        return 1
    print(f"{args.username.lower()}: roles {', '.join(roles) or '(none)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
