"""Grants (or, with --remove, takes away) a role of an existing user, straight in the users
table: how the first administrator is made on a deployment, before anyone can call the
admin routes. With --enable, enables a disabled user instead (an administrator who was
disabled, when no other can enable it).

  grant_role.py --table USERS_TABLE [--remove] USERNAME ROLE
  grant_role.py --table USERS_TABLE --enable USERNAME

USERS_TABLE is the stack output `UsersTableName`. AWS credentials and region come from the
usual places (profile, environment); AWS_ENDPOINT_URL_DYNAMODB points it at a local
DynamoDB. The change applies at once: the authorizer reads the user's roles on every
request (a granted role appears in tokens from the user's next login or refresh; a removed
one stops counting immediately).
"""

import argparse
import sys

from devtools.roles import change_role, enable_user


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, help="the users table (stack output UsersTableName)")
    parser.add_argument("--remove", action="store_true", help="take the role away instead")
    parser.add_argument("--enable", action="store_true", help="enable a disabled user (no role)")
    parser.add_argument("--endpoint", help="DynamoDB endpoint (default: AWS, or AWS_ENDPOINT_URL_DYNAMODB)")
    parser.add_argument("username")
    parser.add_argument("role", nargs="?")
    args = parser.parse_args()
    if args.enable != (args.role is None) or (args.enable and args.remove):
        parser.error("give a ROLE (with or without --remove), or --enable alone")
    try:
        if args.enable:
            enable_user(args.table, args.username, args.endpoint)
            print(f"{args.username.lower()}: enabled")
            return 0
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
