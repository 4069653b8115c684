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
import sys

from devtools.roles import change_role


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
