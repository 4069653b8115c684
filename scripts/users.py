"""Brings users in, or takes them out: the operator's side of CONTRACT.md Part 3, "Importing
users (migration)".

  users.py import FILE.jsonl --api URL [--token TOKEN]
      One user a line, as `POST /admin/users/import` takes them ({"username",
      "password_hash", "id"?, "email"?, "email_verified"?, "roles"?}), sent in batches of
      100 with an administrator's access token (--token, or ADMIN_TOKEN). Shows its
      progress; resumable: FILE.jsonl.progress records the lines done, so a re-run goes on
      after them (and a user imported twice is reported, not written, twice). Prints a
      summary and writes what was skipped, with the reason, to FILE.jsonl.skipped.

  users.py export --table USERS_TABLE [--endpoint URL] > users.jsonl
      Every user, straight from DynamoDB with the operator's AWS credentials (never over
      the public API), as the same JSON lines: the hash as stored (argon2id PHC, or the
      imported scheme's own format until the user's next sign-in), so the file imports
      here again or into anything that reads those formats. Nobody is locked in.

AWS credentials and region come from the usual places; AWS_ENDPOINT_URL_DYNAMODB points
export at a local DynamoDB.
"""

import argparse
import json
import os
import pathlib
import sys
import urllib.error
import urllib.request

import boto3

BATCH = 100


def batches(lines, start):
    batch = []
    for number, line in enumerate(lines):
        if number < start or not line.strip():
            continue
        batch.append((number, json.loads(line)))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def post(api, token, users):
    req = urllib.request.Request(
        api.rstrip("/") + "/admin/users/import",
        data=json.dumps({"users": users}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as res:
            return json.loads(res.read())
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")
        sys.exit(f"users.py: the import request answered {e.code}: {body}")


def progress(done, total):
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)


def import_file(path, api, token):
    path = pathlib.Path(path)
    lines = path.read_text().splitlines()
    total = sum(1 for line in lines if line.strip())
    state = path.with_name(path.name + ".progress")
    start = int(state.read_text()) if state.exists() else 0
    done_before = sum(1 for line in lines[:start] if line.strip())
    imported = skipped = 0
    with open(path.with_name(path.name + ".skipped"), "a") as skipped_file:
        progress(done_before, total)
        done = done_before
        for batch in batches(lines, start):
            report = post(api, token, [user for _, user in batch])
            imported += len(report["imported"])
            for s in report["skipped"]:
                skipped += 1
                skipped_file.write(json.dumps(s) + "\n")
            done += len(batch)
            # Only after the batch's answer: a run stopped mid-batch sends it again, which
            # imports nothing twice.
            state.write_text(str(batch[-1][0] + 1))
            progress(done, total)
    print(file=sys.stderr)
    print(json.dumps({"imported": imported, "skipped": skipped, "done": done, "total": total}))
    return 0


def export(table, endpoint, out):
    ddb = boto3.client("dynamodb", endpoint_url=endpoint or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"))
    count = 0
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            name = item["username"]["S"]
            # User items only: "#" marks the id, address, throttle and mail items.
            if "#" in name or "password_hash" not in item:
                continue
            user = {
                "username": name,
                "password_hash": item["password_hash"]["S"],
                "id": item["user_id"]["S"],
                "roles": sorted(item.get("roles", {}).get("SS", [])),
            }
            if "email" in item:
                user["email"] = item["email"]["S"]
                user["email_verified"] = item.get("email_verified", {}).get("BOOL", False)
            out.write(json.dumps(user) + "\n")
            count += 1
    print(f"{count} users exported", file=sys.stderr)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser("import", help="import a JSON lines file through POST /admin/users/import")
    imp.add_argument("file")
    imp.add_argument("--api", required=True, help="the API's base URL (stack output ApiUrl, or make dev's)")
    imp.add_argument("--token", default=os.environ.get("ADMIN_TOKEN"), help="an admin's access token (or ADMIN_TOKEN)")
    exp = commands.add_parser("export", help="write every user as JSON lines to stdout")
    exp.add_argument("--table", required=True, help="the users table (stack output UsersTableName)")
    exp.add_argument("--endpoint", help="DynamoDB endpoint (default: AWS, or AWS_ENDPOINT_URL_DYNAMODB)")
    args = parser.parse_args()
    if args.command == "import":
        if not args.token:
            parser.error("an admin's access token is needed: --token or ADMIN_TOKEN")
        return import_file(args.file, args.api, args.token)
    return export(args.table, args.endpoint, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
