"""Creates (or checks) the DynamoDB tables exactly as template.yaml defines them.

template.yaml is the one source of truth: every AWS::DynamoDB::Table resource in it is
translated to CreateTable / UpdateTimeToLive / UpdateContinuousBackups calls. Local
table names come from a prefix and the resource's logical id; the variables the
functions read are printed for the caller.

  dynamodb_tables.py create --endpoint URL [--prefix P]   idempotent
  dynamodb_tables.py check  --endpoint URL [--prefix P]   live tables == template
"""

import argparse
import json
import sys

import boto3

from devtools import template

# Which environment variable names which table, as the functions read them.
ENV_FOR_TABLE = {
    "UsersTable": "USERS_TABLE",
    "RevokedTokensTable": "REVOKED_TOKENS_TABLE",
    "SessionsTable": "SESSIONS_TABLE",
    "OneTimeTokensTable": "TOKENS_TABLE",
    "OutboxTable": "OUTBOX_TABLE",
}


def template_tables():
    doc = template.load()
    tables = {k: v["Properties"] for k, v in doc["Resources"].items() if v["Type"] == "AWS::DynamoDB::Table"}
    missing = set(ENV_FOR_TABLE) ^ set(tables)
    if missing:
        sys.exit(f"template.yaml tables {sorted(tables)} do not match {sorted(ENV_FOR_TABLE)}")
    return tables


def table_name(prefix, logical_id):
    return f"{prefix}-{logical_id}"


def client(endpoint):
    return boto3.client("dynamodb", endpoint_url=endpoint)


def create(ddb, prefix):
    for logical_id, props in template_tables().items():
        name = table_name(prefix, logical_id)
        args = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props["BillingMode"],
        }
        if "GlobalSecondaryIndexes" in props:
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if "StreamSpecification" in props:
            args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        if "SSESpecification" in props:
            args["SSESpecification"] = {"Enabled": bool(props["SSESpecification"]["SSEEnabled"])}
        try:
            ddb.create_table(**args)
        except ddb.exceptions.ResourceInUseException:
            pass  # Already there (a persistent DynamoDB Local): keep its data.
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
                )
        pitr = props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")
        if pitr:
            try:
                ddb.update_continuous_backups(
                    TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
                )
            except ddb.exceptions.ClientError as e:  # DynamoDB Local does not implement backups
                print(f"note: {name}: point-in-time recovery not supported here ({e.response['Error']['Code']})", file=sys.stderr)
    return {ENV_FOR_TABLE[lid]: table_name(prefix, lid) for lid in ENV_FOR_TABLE}


def check(ddb, prefix):
    """Compares each live table with its template definition; prints one line per check."""
    passed = failed = 0

    def expect(what, got, want):
        nonlocal passed, failed
        ok = got == want
        passed += ok
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {got!r}" + ("" if ok else f" (template: {want!r})"))

    for logical_id, props in template_tables().items():
        name = table_name(prefix, logical_id)
        desc = ddb.describe_table(TableName=name)["Table"]
        expect(f"{logical_id} key schema", desc["KeySchema"], props["KeySchema"])
        expect(
            f"{logical_id} attribute definitions",
            sorted(desc["AttributeDefinitions"], key=json.dumps),
            sorted(props["AttributeDefinitions"], key=json.dumps),
        )
        expect(f"{logical_id} billing mode", desc.get("BillingModeSummary", {}).get("BillingMode"), props["BillingMode"])
        expect(f"{logical_id} server-side encryption", desc.get("SSEDescription", {}).get("Status"), "ENABLED")
        expect(
            f"{logical_id} indexes",
            sorted(i["IndexName"] for i in desc.get("GlobalSecondaryIndexes", [])),
            sorted(i["IndexName"] for i in props.get("GlobalSecondaryIndexes", [])),
        )
        expect(
            f"{logical_id} stream",
            desc.get("StreamSpecification", {}).get("StreamViewType"),
            props.get("StreamSpecification", {}).get("StreamViewType"),
        )
        ttl = props.get("TimeToLiveSpecification")
        live_ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        expect(
            f"{logical_id} TTL",
            (live_ttl.get("TimeToLiveStatus"), live_ttl.get("AttributeName")),
            ("ENABLED", ttl["AttributeName"]) if ttl else ("DISABLED", None),
        )
        pitr = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        expect(
            f"{logical_id} point-in-time recovery",
            pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"],
            "ENABLED",
        )
    print(f"{passed} passed, {failed} failed")
    return failed == 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["create", "check"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--prefix", default="auth-local")
    args = parser.parse_args()
    ddb = client(args.endpoint)
    if args.action == "create":
        print(json.dumps(create(ddb, args.prefix)))
    else:
        sys.exit(0 if check(ddb, args.prefix) else 1)


if __name__ == "__main__":
    main()
