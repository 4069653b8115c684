"""template.yaml, read statically: least privilege per function, and configuration wiring.

Each function is granted exactly the DynamoDB actions its code uses and reads the signing
secret only if it signs or verifies tokens (its `keys` in shared/functions.json); the
authorizer cache cannot outlive what token verification tolerates; every variable a
function reads reaches it. No AWS and no DynamoDB needed.
"""

import functools
import json
import os
import pathlib
import re

import pytest
from devtools import template, wiring
from devtools.functions import by_logical_id

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = template.load()
# shared/functions.json, by logical id: which keys each function holds.
TABLE = by_logical_id()
ENV_JSON = json.loads((ROOT / "events" / "env.json").read_text())
TABLES = {
    "users": "UsersTable",
    "revoked": "RevokedTokensTable",
    "sessions": "SessionsTable",
    "tokens": "OneTimeTokensTable",
    "outbox": "OutboxTable",
}

# Which secrets a function may read, per SigningAlgorithm: one that signs reads the HMAC
# secret, or the private key and the public key set; one that verifies, the HMAC secret or
# only the public set; the JWKS function only the public set (nothing with HMAC).
SIGNS = {"HS256": {"JwtSigningSecret"}, "RS256": {"JwtPrivateKeySecret", "JwtPublicKeysSecret"}}
VERIFIES = {"HS256": {"JwtSigningSecret"}, "RS256": {"JwtPublicKeysSecret"}}
PUBLISHES = {"HS256": set(), "RS256": {"JwtPublicKeysSecret"}}
NOTHING = {"HS256": set(), "RS256": set()}
ALGORITHMS = ["HS256", "RS256"]
# The table's `keys` -> the secrets read. The rotation function rotates the private key with
# the grants of its own statements (GRANTS), not the read policy.
READS = {"sign": SIGNS, "verify": VERIFIES, "publish": PUBLISHES, "rotate": NOTHING, "none": NOTHING}
# And the table's `factor_key`: the key that opens TOTP secrets, whatever the algorithm.
FACTOR_KEY = {algorithm: {"MfaKeySecret"} for algorithm in ("HS256", "RS256")}


def secrets_read(function):
    """Per algorithm, the secrets `function` (a row of shared/functions.json) reads."""
    keys = READS[function.keys]
    return {a: keys[a] | (FACTOR_KEY[a] if function.factor_key else set()) for a in keys}

# Per function: every DynamoDB action it may call, on which table (IAM facts, kept here). A
# TransactWriteItems needs the action of each of its items (register's two Puts: PutItem).
# Exact: an unused grant fails too.
GRANTS = {
    # With mail, the registration's transaction also writes the verification token and its mail.
    # And checks that the address is no other account's verified one.
    "RegisterFunction": {
        "PutItem users", "PutItem sessions", "PutItem tokens", "PutItem outbox", "ConditionCheckItem users",
    },
    # And a lazy migration from Cognito: the pool's user read, created here, read back.
    # Multi-factor: the factor read and a code used up; the second step's mfa_token stored,
    # read, counted and used up.
    "LoginFunction": {
        "BatchGetItem users", "UpdateItem users", "DeleteItem users", "PutItem sessions", "PutItem users", "GetItem users",
        "PutItem tokens", "GetItem tokens", "UpdateItem tokens", "DeleteItem tokens",
    },
    "RefreshFunction": {"GetItem users", "BatchGetItem users", "BatchGetItem revoked", "PutItem revoked", "UpdateItem sessions"},
    "LogoutFunction": {"UpdateItem users", "PutItem revoked"},
    "MeFunction": set(),
    "DiscoveryFunction": set(),
    "PreflightFunction": set(),
    # An import: each user, its id item and its verified address's claim (one transaction).
    # A factor's reset: the factor removed, the notice queued.
    "AdminFunction": {"GetItem users", "UpdateItem users", "PutItem users", "DeleteItem users", "PutItem outbox"},
    # A verification: the token read and used up, the address claimed, the user marked.
    # A resend: the index of addresses queried, the allowance counted, a token and its mail.
    "EmailFunction": {
        "GetItem tokens", "DeleteItem tokens", "PutItem users", "UpdateItem users",
        'Query {"Sub": "${UsersTable.Arn}/index/by-email"}', "PutItem tokens", "PutItem outbox",
        # A forgotten password: owner, id and user read; the name's lock lifted.
        "GetItem users", "DeleteItem users",
    },
    "AccountFunction": {
        "BatchGetItem users", "GetItem users", "UpdateItem users", "DeleteItem users",
        "BatchGetItem revoked", "PutItem revoked",
        "Query sessions", "BatchGetItem sessions", "PutItem sessions", "DeleteItem sessions",
        "BatchWriteItem sessions",
        # The password-changed notice; a change of address: its token, its mail and the
        # old address's notice (one transaction), and the allowance it spends. A deleted
        # user's id item, kept as a tombstone.
        "PutItem outbox", "PutItem tokens", "PutItem users",
    },
    "AuthorizerFunction": {"BatchGetItem users", "BatchGetItem revoked"},
    # The rotation steps on the private key, and publishing the public set; no table.
    # The outbox: scanned, each mail claimed and forgotten; its stream; SES from the sender only;
    # the dead-letter queue.
    "MailerFunction": {
        "Scan outbox", "UpdateItem outbox", "DeleteItem outbox",
        'DescribeStream {"GetAtt": "OutboxTable.StreamArn"}', 'GetRecords {"GetAtt": "OutboxTable.StreamArn"}',
        'GetShardIterator {"GetAtt": "OutboxTable.StreamArn"}', 'ListStreams {"GetAtt": "OutboxTable.StreamArn"}',
        'ses:SendEmail {"Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*"}',
        'sqs:SendMessage {"GetAtt": "MailerDeadLetterQueue.Arn"}',
    },
    "KeyRotationFunction": {
        'secretsmanager:DescribeSecret {"Ref": "JwtPrivateKeySecret"}',
        'secretsmanager:GetSecretValue {"Ref": "JwtPrivateKeySecret"}',
        'secretsmanager:PutSecretValue {"Ref": "JwtPrivateKeySecret"}',
        'secretsmanager:UpdateSecretVersionStage {"Ref": "JwtPrivateKeySecret"}',
        'secretsmanager:PutSecretValue {"Ref": "JwtPublicKeysSecret"}',
    },
}

# Per function: the secrets it reads (from its `keys` in shared/functions.json; None for a
# function the table lacks, which test_the_expected_table_covers_every_function reports),
# and its grants.
EXPECTED = {name: (secrets_read(TABLE[name]) if name in TABLE else None, grants) for name, grants in GRANTS.items()}

NO_VALUE = object()


def under(value, algorithm):
    """`value` with the template's Fn::If resolved for SigningAlgorithm = `algorithm`."""
    # (HasLegacyCognito: on, so its grants are checked too; the test of the migration's
    # statements checks they go with it.)
    conditions = {
        "IsHmac": algorithm == "HS256",
        "IsAsymmetric": algorithm != "HS256",
        "SignsWithRsa": algorithm == "RS256",
        "HasLegacyCognito": True,
    }
    if isinstance(value, list):
        return [x for x in (under(v, algorithm) for v in value) if x is not NO_VALUE]
    if isinstance(value, dict):
        if set(value) in ({"If"}, {"Fn::If"}) and next(iter(value.values()))[0] in conditions:
            condition, yes, no = next(iter(value.values()))
            return under(yes if conditions[condition] else no, algorithm)
        if value == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        return {k: under(v, algorithm) for k, v in value.items()}
    return value


def test_the_algorithm_conditions_are_the_ones_resolved_here():
    assert TEMPLATE["Conditions"]["IsHmac"] == {"Equals": [{"Ref": "SigningAlgorithm"}, "HS256"]}
    assert TEMPLATE["Conditions"]["IsAsymmetric"] == {"Not": [{"Condition": "IsHmac"}]}
    assert TEMPLATE["Conditions"]["SignsWithRsa"] == {"Equals": [{"Ref": "SigningAlgorithm"}, "RS256"]}
    assert TEMPLATE["Parameters"]["SigningAlgorithm"]["AllowedValues"] == ["RS256", "ES256", "EdDSA", "HS256"]


# MemorySize (so CPU share: 1,769 MB is one vCPU) where it is not the Globals' 128 MB: the
# functions that hash passwords (the table's hashes_passwords) get 1024 MB for argon2, and
# the rotation function 512 MB for making RSA keys.
MEMORY = {**{name: 1024 for name, f in TABLE.items() if f.hashes_passwords}, "KeyRotationFunction": 512}


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA", "HS256"])
def test_refresh_gets_the_cpu_for_two_rsa_signatures_only_when_it_makes_them(algorithm):
    # Two RS256 signatures per refresh are ~1.5 ms of one core: ~21 ms at 128 MB's share,
    # ~5 ms at 512 MB's. The other algorithms sign in microseconds.
    default = TEMPLATE["Globals"]["Function"]["MemorySize"]
    assert default == 128
    for name, props in functions().items():
        expected = 512 if (name, algorithm) == ("RefreshFunction", "RS256") else MEMORY.get(name, default)
        assert under(props.get("MemorySize", default), algorithm) == expected, name


# New configuration: parameter -> (variable, default, min, max, the functions that read it).
PARAMETERS = {
    "SessionMaxLifetimeSeconds": (
        "SESSION_MAX_LIFETIME_SECONDS", 7776000, 300, 157680000,
        {"RegisterFunction", "LoginFunction", "RefreshFunction", "AccountFunction"},
    ),
    "LoginLockSeconds": ("LOGIN_LOCK_SECONDS", 30, 1, 900, {"LoginFunction", "AccountFunction"}),
    "LoginNameMaxFailures": ("LOGIN_NAME_MAX_FAILURES", 50, 5, 10000, {"LoginFunction", "AccountFunction"}),
    "LoginNameWindowSeconds": ("LOGIN_NAME_WINDOW_SECONDS", 900, 60, 86400, {"LoginFunction", "AccountFunction"}),
}

# The contract's maximum clock leeway for exp/nbf (../shared/CONTRACT.md, "Tokens").
MAX_LEEWAY_SECONDS = 30

# Declared by the template only as blanks, so that events/env.json can set them for
# `sam local invoke`: a deployed function must never get a value for either.
LOCAL_ONLY = {"JWT_SECRET", "AWS_ENDPOINT_URL_DYNAMODB"}

SECRET_POLICY = "AWSSecretsManagerGetSecretValuePolicy"
WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}


def functions():
    return {k: v["Properties"] for k, v in TEMPLATE["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def as_list(value):
    return value if isinstance(value, list) else [value]


def table_of(resource):
    """The table short name ("users") a policy Resource names, or the Resource itself."""
    if isinstance(resource, dict):
        att = resource.get("GetAtt") or resource.get("Fn::GetAtt")
        parts = att.split(".") if isinstance(att, str) else att
        if parts and list(parts[1:]) == ["Arn"]:
            for short, logical_id in TABLES.items():
                if parts[0] == logical_id:
                    return short
    return json.dumps(resource)


def statements(props):
    return [s for policy in props.get("Policies") or [] if isinstance(policy, dict) for s in policy.get("Statement", [])]


def grants(props):
    """{"UpdateItem users", ...}: every (action, table) the inline statements allow."""
    found = set()
    for s in statements(props):
        assert s["Effect"] == "Allow", s
        for action in as_list(s["Action"]):
            service, _, name = action.partition(":")
            label = name if service == "dynamodb" else action
            found |= {f"{label} {table_of(r)}" for r in as_list(s["Resource"])}
    return found


def environment(name):
    own = ((functions()[name].get("Environment") or {}).get("Variables")) or {}
    shared = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    return {**shared, **own}, own


def test_the_expected_table_covers_every_function():
    assert set(EXPECTED) == set(functions())
    assert set(EXPECTED) == set(TABLE)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_function_has_exactly_the_grants_its_code_uses(name, algorithm):
    props = under(functions()[name], algorithm)
    _, expected = EXPECTED[name]
    assert "Role" not in props, "a function's own role would bypass these policies"
    for policy in props.get("Policies") or []:
        # Only these two kinds, so that no managed policy or SAM policy template (say
        # DynamoDBCrudPolicy) grants more than the statements below show.
        assert isinstance(policy, dict) and set(policy) <= {SECRET_POLICY, "Statement"}, policy
    assert grants(props) == expected


def test_no_policies_come_from_globals():
    assert not set(TEMPLATE["Globals"]["Function"]) & {"Policies", "Role", "PermissionsBoundary"}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_only_functions_that_sign_read_the_private_key_and_verifiers_only_public_keys(name, algorithm):
    reads, _ = EXPECTED[name]
    policies = under(functions()[name].get("Policies") or [], algorithm)
    arns = [p[SECRET_POLICY]["SecretArn"] for p in policies if SECRET_POLICY in p]
    assert {arn["Ref"] for arn in arns} == reads[algorithm]
    assert len(arns) == len(reads[algorithm])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_function_is_told_where_the_keys_it_reads_are(algorithm):
    shared = under(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"], algorithm)
    assert shared["JWT_ALGORITHM"] == {"Ref": "SigningAlgorithm"}
    hmac = algorithm == "HS256"
    assert shared["JWT_SECRET_ARN"] == ({"Ref": "JwtSigningSecret"} if hmac else "")
    assert shared["JWT_PUBLIC_KEYS_ARN"] == ("" if hmac else {"Ref": "JwtPublicKeysSecret"})
    for name, (reads, _) in EXPECTED.items():
        own = under((functions()[name].get("Environment") or {}).get("Variables") or {}, algorithm)
        private = own.get("JWT_PRIVATE_KEY_ARN", "")
        # The rotation function rotates that one secret (its grants are statements).
        reads_private = "JwtPrivateKeySecret" in reads[algorithm] or TABLE[name].keys == "rotate"
        assert (private == {"Ref": "JwtPrivateKeySecret"}) == reads_private, name
        assert own.get("MFA_KEY_ARN", "") == ({"Ref": "MfaKeySecret"} if TABLE[name].factor_key else ""), name


def test_the_factor_key_is_generated_kept_and_never_rotated():
    secret = TEMPLATE["Resources"]["MfaKeySecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert "Condition" not in secret
    # Deleting it would leave every enrolled factor unopenable, as a rotation would.
    assert (secret["DeletionPolicy"], secret["UpdateReplacePolicy"]) == ("Retain", "Retain")
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] >= 32 and "SecretString" not in secret["Properties"]
    rotations = [r for r in TEMPLATE["Resources"].values() if r["Type"] == "AWS::SecretsManager::RotationSchedule"]
    assert all(r["Properties"]["SecretId"] != {"Ref": "MfaKeySecret"} for r in rotations)


def test_the_asymmetric_key_is_rotated_on_a_schedule_by_the_rotation_function():
    resources = TEMPLATE["Resources"]
    schedule = resources["JwtKeyRotationSchedule"]
    assert schedule["Condition"] == "IsAsymmetric"
    props = schedule["Properties"]
    assert props["SecretId"] == {"Ref": "JwtPrivateKeySecret"}
    assert props["RotationLambdaARN"] == {"GetAtt": "KeyRotationFunction.Arn"}
    assert props["RotateImmediatelyOnUpdate"] is True
    assert props["RotationRules"] == {"ScheduleExpression": {"Sub": "rate(${KeyRotationDays} days)"}}
    permission = resources["KeyRotationPermission"]["Properties"]
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    # Invocable by Secrets Manager for this one secret only.
    assert permission["SourceArn"] == {"Ref": "JwtPrivateKeySecret"}
    assert resources["KeyRotationFunction"]["Metadata"]["BuildProperties"]["Binary"] == "rotation"
    for name in ["JwtPrivateKeySecret", "JwtPublicKeysSecret", "KeyRotationFunction", "KeyRotationPermission"]:
        assert resources[name]["Condition"] == "IsAsymmetric", name
    assert resources["JwtSigningSecret"]["Condition"] == "IsHmac"


def test_the_users_table_is_keyed_by_username():
    # The login conditions below name the partition key: LeadingKeys is its value, and
    # dynamodb:Attributes must list it.
    key = TEMPLATE["Resources"]["UsersTable"]["Properties"]["KeySchema"]
    assert key == [{"AttributeName": "username", "KeyType": "HASH"}]


def test_login_creates_users_only_with_the_cognito_migration_on():
    policies = functions()["LoginFunction"]["Policies"]
    conditional = [p for p in policies if set(p) in ({"If"}, {"Fn::If"})]
    migration = [p for p in conditional if next(iter(p.values()))[0] == "HasLegacyCognito"]
    assert len(migration) == 1
    _, on, off = next(iter(migration[0].values()))
    assert off == {"Ref": "AWS::NoValue"}
    assert {a for s in on["Statement"] for a in as_list(s["Action"])} == {"dynamodb:PutItem", "dynamodb:GetItem"}
    assert TEMPLATE["Conditions"]["HasLegacyCognito"] == {"Not": [{"Equals": [{"Ref": "LegacyCognitoUserPoolId"}, ""]}]}


def test_login_writes_only_throttle_items_password_hashes_and_new_session_rows():
    login = statements(under(functions()["LoginFunction"], "RS256"))
    writes = [s for s in login if set(as_list(s["Action"])) & WRITES]
    rows = [s for s in writes if [table_of(r) for r in as_list(s["Resource"])] == ["sessions"]]
    assert len(rows) == 1 and as_list(rows[0]["Action"]) == ["dynamodb:PutItem"]
    # The second step's mfa_token: the one-time tokens table, which holds only hashes.
    (mfa_tokens,) = [s for s in writes if [table_of(r) for r in as_list(s["Resource"])] == ["tokens"]]
    # Only "mfa#" items: a mailed token (a password reset's) is never within its reach.
    assert mfa_tokens["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["mfa#*"]}}
    assert 'const MFA_TOKEN_PREFIX: &str = "mfa#";' in (ROOT / "shared/src/auth/mfa.rs").read_text()
    # A code used up: an UpdateItem of "mfa#" items only.
    (factor,) = [
        s
        for s in writes
        if s is not mfa_tokens and s.get("Condition", {}).get("ForAllValues:StringLike") == {"dynamodb:LeadingKeys": ["mfa#*"]}
    ]
    assert [table_of(r) for r in as_list(factor["Resource"])] == ["users"]
    assert as_list(factor["Action"]) == ["dynamodb:UpdateItem"] and set(factor["Condition"]) == {"ForAllValues:StringLike"}
    writes = [s for s in writes if s is not rows[0] and s is not mfa_tokens and s is not factor]
    assert all(table_of(r) == "users" for s in writes for r in as_list(s["Resource"]))
    assert all(set(as_list(s["Action"])) <= WRITES for s in writes), "no write shares a statement with a read"

    throttle = [s for s in writes if "dynamodb:DeleteItem" in as_list(s["Action"])]
    assert len(throttle) == 1
    assert set(throttle[0]["Action"]) == {"dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    assert throttle[0]["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["login#*"]}}

    # A lazy migration creates users: PutItems of a user item's attributes and its "id#"
    # and "email#" items, never a throttle, mail or session item, returning nothing.
    (migration,) = [s for s in writes if as_list(s["Action"]) == ["dynamodb:PutItem"]]
    condition = migration["Condition"]
    assert sorted(condition["ForAllValues:StringEquals"]["dynamodb:Attributes"]) == [
        "alias_of", "created_at", "email", "email_verified", "email_verified_at", "password_hash", "roles", "user_id", "username",
    ]
    assert condition["ForAllValues:StringNotLike"] == {"dynamodb:LeadingKeys": ["login#*", "mail#*", "session#*", "mfa#*"]}
    assert condition["StringEqualsIfExists"] == {"dynamodb:ReturnValues": ["NONE"]}
    # And the code's migration writes no other attribute (password_scheme only for a
    # scheme other than argon2id, which a migration never has).
    source = (ROOT / "shared/src/auth/legacy.rs").read_text()
    assert 'import_user(&user, "argon2id")' in source

    rehash = [s for s in writes if s is not throttle[0] and s is not migration]
    assert len(rehash) == 1
    assert as_list(rehash[0]["Action"]) == ["dynamodb:UpdateItem"]
    condition = rehash[0]["Condition"]
    # (password_scheme: an imported hash's scheme, removed with the upgrade to argon2id.)
    assert sorted(condition["ForAllValues:StringEquals"]["dynamodb:Attributes"]) == ["password_hash", "password_scheme", "username"]
    assert condition["StringEqualsIfExists"] == {"dynamodb:ReturnValues": ["NONE"]}
    # User items only: usernames have no "#", every other kind of item's key does.
    assert condition["ForAllValues:StringNotLike"] == {"dynamodb:LeadingKeys": ["*#*"]}
    assert set(condition) == {"ForAllValues:StringEquals", "StringEqualsIfExists", "ForAllValues:StringNotLike"}


def test_the_authorizer_cache_cannot_outlive_token_verification():
    ttl = TEMPLATE["Parameters"]["AuthorizerResultTtlSeconds"]
    assert ttl["Default"] == 0
    assert ttl["MinValue"] == 0
    assert ttl["MaxValue"] <= MAX_LEEWAY_SECONDS
    api = TEMPLATE["Resources"]["AuthApi"]["Properties"]
    identity = api["Auth"]["Authorizers"]["TokenAuthorizer"]["Identity"]
    assert identity["ReauthorizeEvery"] == {"Ref": "AuthorizerResultTtlSeconds"}


@pytest.mark.parametrize("parameter", sorted(PARAMETERS))
def test_new_parameters_reach_exactly_the_functions_that_read_them(parameter):
    variable, default, low, high, readers = PARAMETERS[parameter]
    p = TEMPLATE["Parameters"][parameter]
    assert (p["Type"], p["Default"], p["MinValue"], p["MaxValue"]) == ("Number", default, low, high)
    assert p["Description"].strip()
    getting = {name for name in functions() if environment(name)[0].get(variable) == {"Ref": parameter}}
    assert getting == readers
    # The local API passes the template's default on (scripts/local_api.py, devtools/wiring.py).
    assert wiring.PARAMETER_ENV[parameter] == variable


def test_local_only_variables_are_declared_blank():
    # Declared so `sam local invoke` can override them; blank, so no deployment gets a
    # secret in its environment or a local endpoint.
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert {name: variables.get(name) for name in LOCAL_ONLY} == {name: "" for name in LOCAL_ONLY}


def test_env_json_has_one_entry_per_function():
    assert set(ENV_JSON) == set(functions())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_variable_a_function_reads_is_set_by_the_template(name):
    # events/env.json names every variable the function reads; `sam local invoke` only
    # overrides variables the template declares for that function.
    everything, own = environment(name)
    reads = set(ENV_JSON[name])
    assert reads <= set(everything), f"not in the template for {name}: {sorted(reads - set(everything))}"
    # And the variables given to this function alone are ones it reads.
    assert set(own) <= set(ENV_JSON[name]), f"not in events/env.json for {name}: {sorted(set(own) - set(ENV_JSON[name]))}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_events_env_json_and_the_template_give_a_function_only_variables_it_reads(name):
    # What it reads is the Rust side's one list (shared::spec::variables_read_by, carried by
    # shared/functions.json): a variable set for a function that never reads it is a stale
    # setting or a typo in the template or in events/env.json.
    reads = by_logical_id()[name].variables
    assert set(ENV_JSON[name]) <= reads, f"events/env.json sets what {name} never reads: {sorted(set(ENV_JSON[name]) - reads)}"
    _, own = environment(name)
    assert set(own) <= reads, f"the template sets what {name} never reads: {sorted(set(own) - reads)}"


# Writes of the functions anyone signed in can reach (logout) or that change who may do
# what (admin) are held to the attributes and keys their code writes.
USER_ITEM_ONLY = {"ForAllValues:StringNotLike": {"dynamodb:LeadingKeys": ["*#*"]}}


@pytest.mark.parametrize(
    "name, attributes",
    [
        ("LogoutFunction", ["sessions_valid_after", "username"]),
        ("AdminFunction", ["disabled", "roles", "sessions_valid_after", "username"]),
        (
            "AccountFunction",
            ["disabled", "email_change_requested_at", "password_hash", "password_scheme", "sessions_valid_after", "user_id", "username"],
        ),
    ],
)
def test_user_item_updates_are_limited_to_the_attributes_the_code_writes(name, attributes):
    updates = [
        s
        for s in statements(functions()[name])
        if "dynamodb:UpdateItem" in as_list(s["Action"]) and table_of(s["Resource"]) == "users"
    ]
    # Every other UpdateItem of the users table is held to the throttle's "login#" items
    # (and the account's mail allowance, "mail#" items, and its factor, "mfa#" items).
    counters = [
        s
        for s in updates
        if s.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        in (["login#*"], ["login#*", "mail#*", "mfa#*"])
        and len(s["Condition"]) == 1
    ]
    updates = [s for s in updates if s not in counters]
    assert len(updates) == 1 and as_list(updates[0]["Action"]) == ["dynamodb:UpdateItem"]
    condition = updates[0]["Condition"]
    assert sorted(condition["ForAllValues:StringEquals"]["dynamodb:Attributes"]) == attributes
    assert condition["ForAllValues:StringNotLike"] == USER_ITEM_ONLY["ForAllValues:StringNotLike"]
    assert condition["StringEqualsIfExists"] == {"dynamodb:ReturnValues": ["NONE"]}


def test_register_writes_only_user_and_alias_items():
    puts = [
        s
        for s in statements(functions()["RegisterFunction"])
        if "dynamodb:PutItem" in as_list(s["Action"]) and table_of(s["Resource"]) == "users"
    ]
    assert len(puts) == 1
    condition = puts[0]["Condition"]
    # The attributes a new user's items are written with (shared::store::dynamodb::users's
    # new_user_item and id_item, what create_user puts), and what an existing user item
    # holds besides (returned by a failed condition, ALL_OLD).
    source = (ROOT / "shared/src/store/dynamodb/users.rs").read_text()
    create = source[source.index("fn new_user_item") :]
    create = create[: create.index("impl DynamoStore {")]
    written = set(re.findall(r'\("([a-z_]+)"\.into\(\), ', create))
    assert written == {
        "username", "user_id", "password_hash", "created_at", "roles", "email", "email_verified", "email_verified_at", "alias_of",
    }
    assert "new_user_item(user)" in source[source.index("async fn create_user") :]
    attributes = set(condition["ForAllValues:StringEquals"]["dynamodb:Attributes"])
    assert attributes == written | {"sessions_valid_after", "disabled", "password_scheme", "email_change_requested_at"}
    assert not attributes & {"failures", "locked_until_ms", "expires_at", "write_id"}, "no throttle counter"
    assert condition["ForAllValues:StringNotLike"] == {"dynamodb:LeadingKeys": ["login#*"]}


@pytest.mark.parametrize("name", ["AuthorizerFunction", "RefreshFunction"])
def test_the_authorizer_and_refresh_read_only_session_revocations_and_users(name):
    reads = [s for s in statements(functions()[name]) if "dynamodb:BatchGetItem" in as_list(s["Action"])]
    by_table = {table_of(s["Resource"]): s.get("Condition") for s in reads}
    assert by_table == {"users": None, "revoked": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["session#*"]}}}


def test_the_admin_function_reads_users_without_their_password_hash():
    # shared::store::UserStore::user_profile: a projection of exactly these attributes.
    reads = [
        s
        for s in statements(functions()["AdminFunction"])
        if "dynamodb:GetItem" in as_list(s["Action"]) and table_of(s["Resource"]) == "users"
    ]
    assert len(reads) == 1 and as_list(reads[0]["Action"]) == ["dynamodb:GetItem"]
    condition = reads[0]["Condition"]
    attributes = condition["ForAllValues:StringEquals"]["dynamodb:Attributes"]
    assert sorted(attributes) == [
        "created_at", "disabled", "email", "email_verified", "password_scheme", "roles", "user_id", "username",
    ]
    assert "password_hash" not in attributes
    # Without a projection a GetItem asks for every attribute (Select ALL_ATTRIBUTES): refused.
    assert condition["StringEqualsIfExists"] == {"dynamodb:Select": ["SPECIFIC_ATTRIBUTES"]}
    assert condition["ForAllValues:StringNotLike"] == USER_ITEM_ONLY["ForAllValues:StringNotLike"]
    # And the code's projection names the same attributes.
    source = (ROOT / "shared/src/store/dynamodb/users.rs").read_text()
    profile = source[source.index("async fn user_profile") :]
    profile = profile[: profile.index("Ok(Some(UserProfile")]
    named = set(re.findall(r'expression_attribute_names\("#\w+", "(\w+)"\)', profile))
    assert named == set(attributes)


@pytest.mark.parametrize("name", ["LogoutFunction", "AccountFunction"])
def test_logout_and_ending_a_session_write_only_session_revocations(name):
    puts = [
        s
        for s in statements(functions()[name])
        if "dynamodb:PutItem" in as_list(s["Action"]) and table_of(s["Resource"]) == "revoked"
    ]
    assert len(puts) == 1 and as_list(puts[0]["Action"]) == ["dynamodb:PutItem"]
    assert puts[0]["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["session#*"]}}


def test_the_default_key_rotation_outlasts_a_refresh_token_and_the_functions_are_told_it():
    # The functions refuse to start when KEY_ROTATION_DAYS x 86400 is below the refresh
    # lifetime plus the leeway (shared/src/config); the defaults must pass.
    default = template.parameter_values(TEMPLATE)
    assert int(default["KeyRotationDays"]) * 86400 >= int(default["RefreshTokenTtlSeconds"]) + 5
    value = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["KEY_ROTATION_DAYS"]
    conditions = TEMPLATE["Conditions"]
    assert template.evaluate(value, default, conditions) == default["KeyRotationDays"]
    hmac = template.parameter_values(TEMPLATE, {"SigningAlgorithm": "HS256"})
    assert template.evaluate(value, hmac, conditions) == ""


def test_every_gateway_answer_carries_cors_for_the_first_allowed_origin_and_none_without_origins():
    # API Gateway's own 401/403/404/429/5xx (and the rest) must be readable by the page: a
    # browser hides an answer without Access-Control-Allow-Origin, however it failed.
    responses = TEMPLATE["Resources"]["AuthApi"]["Properties"]["GatewayResponses"]
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "THROTTLED", "MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    conditions = TEMPLATE["Conditions"]
    two = template.parameter_values(TEMPLATE, {"AllowedOrigins": "https://a.example,https://b.example"})
    none = template.parameter_values(TEMPLATE, {"AllowedOrigins": ""})
    for name, response in responses.items():
        headers = response["ResponseParameters"]["Headers"]
        given = {k: template.evaluate(v, two, conditions) for k, v in headers.items()}
        assert given["Access-Control-Allow-Origin"] == "'https://a.example'", name
        assert given["Access-Control-Allow-Credentials"] == "'true'", name
        assert given["Vary"] == "'Origin'", name
        assert "Retry-After" in given["Access-Control-Expose-Headers"], name
        bare = {k: template.evaluate(v, none, conditions) for k, v in headers.items()}
        assert {k for k, v in bare.items() if v is not template.NO_VALUE and k.startswith("Access-Control")} == set(), name
    # 429 tells the client when to come back.
    assert responses["THROTTLED"]["StatusCode"] == 429
    assert responses["THROTTLED"]["ResponseParameters"]["Headers"]["Retry-After"] == "'1'"


def test_the_cookies_path_is_not_configurable():
    # The __Host- prefix makes a browser keep the cookie only with Path=/ (and no Domain),
    # whatever the stage or custom domain: nothing may set another path.
    assert "CookiePath" not in TEMPLATE["Parameters"]
    for name in EXPECTED:
        everything, _ = environment(name)
        assert "COOKIE_PATH" not in everything, name


# ---------------------------------------------------------------------------------------
# Operations (README, "Operating it"): logs, access logs, tracing, WAF, reserved
# concurrency, metrics, alarms and the dashboard.

# The metrics the functions emit (shared/src/metrics.rs), the one list: CloudWatch Embedded
# Metric Format lines, namespace METRICS_NAMESPACE, dimension set [Service] (= the stack
# name); ColdStart also with [Service, Function], Function being the binary's name. The
# alarms and the dashboard may use these and no other name of that namespace.
METRICS = {
    "LoginSucceeded": "Count",
    "LoginFailed": "Count",
    "LoginLocked": "Count",  # the failed-login throttle refused a login or an account-route password check
    "RefreshSucceeded": "Count",
    "RefreshReuseDetected": "Count",  # a spent refresh token came back: the session was revoked as stolen
    "AuthorizerAllowed": "Count",
    "AuthorizerDenied": "Count",
    "AuthorizerUnavailable": "Count",  # the authorizer could not decide (store or key fault): refused
    "StoreFaults": "Count",  # a DynamoDB call failed (unavailable, throttled, fault)
    "StoreLatency": "Milliseconds",  # per DynamoDB call
    "ColdStart": "Count",
    "MailQueued": "Count",  # a mail a request queued (register, resend, reset, change, notices)
    "MailSent": "Count",  # a queued mail handed to SES (the mailer)
    "MailRefused": "Count",  # a queued mail SES refused for good: dropped
}
METRICS_PER_FUNCTION = {"ColdStart"}

# CloudWatch Logs' valid retention periods (days).
LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]

# What an access log line may hold: API Gateway's context variables naming the request, the
# client's address and user agent, timings, statuses, errors, the WAF's verdict and the
# authorizer's outcome and principal (the user id). No header, body, token, claim, path with
# its parameters (a username) or authorizer context value.
ACCESS_LOG_FIELDS = {
    "userAgent": "$context.identity.userAgent",
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "requestTimeEpoch": "$context.requestTimeEpoch",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integration.status",
    "integrationError": "$context.integration.error",
    "authorizerStatus": "$context.authorizer.status",
    "authorizerLatency": "$context.authorizer.latency",
    "authorizerError": "$context.authorizer.error",
    "principalId": "$context.authorizer.principalId",
    # Quoted like every value: an unquoted $context.error.messageString might render as a
    # bare `-` when there is no error, which would make most lines invalid JSON.
    "errorMessage": "$context.error.message",
    "errorResponseType": "$context.error.responseType",
    "waf": "$context.wafResponseCode",
}
# The brief's minimum: these must stay.
ACCESS_LOG_REQUIRED = {
    "requestId", "extendedRequestId", "ip", "requestTime", "httpMethod", "resourcePath", "status", "protocol",
    "responseLength", "responseLatency", "integrationLatency", "authorizerError", "authorizerLatency",
    "authorizerStatus", "errorMessage", "errorResponseType", "userAgent", "principalId",
}

ALARM_TOPIC = {"If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def resources_of(kind):
    return {k: v for k, v in TEMPLATE["Resources"].items() if v["Type"] == kind}


def binaries():
    """Function logical id -> the binary it runs (register, login, ...)."""
    return {
        k: v["Metadata"]["BuildProperties"]["Binary"]
        for k, v in TEMPLATE["Resources"].items()
        if v["Type"] == "AWS::Serverless::Function"
    }


@functools.lru_cache(maxsize=None)
def transformed(**overrides):
    """The template as SAM's transform turns it into plain CloudFormation (samtranslator, as
    `sam validate` and CloudFormation's AWS::Serverless transform run it), for the given
    parameter values. Offline: a stub stands in for IAM's managed-policy listing."""
    from unittest import mock

    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    class ManagedPolicies:
        def load(self):
            return {}

    doc = yaml_parse((ROOT / "template.yaml").read_text())
    for r in doc["Resources"].values():
        if r["Type"] == "AWS::Serverless::Function":
            r["Properties"]["CodeUri"] = "s3://bucket/key"  # what `sam package` puts there
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        return transform(doc, dict(overrides), ManagedPolicies())


def test_log_retention_is_a_parameter_of_cloudwatchs_valid_values():
    p = TEMPLATE["Parameters"]["LogRetentionDays"]
    assert (p["Type"], p["Default"], p["AllowedValues"]) == ("Number", 30, LOG_RETENTION_DAYS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_function_logs_json_into_its_own_group_kept_for_the_retention(name):
    resource = TEMPLATE["Resources"][name]
    assert resource["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": f"{name}LogGroup"}}
    group = TEMPLATE["Resources"][f"{name}LogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # Created with its function, never without.
    assert group.get("Condition") == resource.get("Condition")
    # The security events are the audit trail: kept when the stack goes, expiring still.
    assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == ("Retain", "Retain")
    # A generated name: a retained group never blocks deploying the stack again.
    assert "LogGroupName" not in group["Properties"]
    assert TEMPLATE["Globals"]["Function"]["LoggingConfig"] == {"LogFormat": "JSON"}


def test_sam_merges_the_json_format_and_each_functions_group():
    lambdas = resources_of_transformed("AWS::Lambda::Function")
    assert set(lambdas) == set(EXPECTED)
    for name, fn in lambdas.items():
        assert fn["Properties"]["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": {"Ref": f"{name}LogGroup"}}, name


def resources_of_transformed(kind, **overrides):
    return {k: v for k, v in transformed(**overrides)["Resources"].items() if v["Type"] == kind}


def test_every_log_group_has_the_retention():
    groups = resources_of("AWS::Logs::LogGroup")
    assert set(groups) == {f"{name}LogGroup" for name in EXPECTED} | {"ApiAccessLogGroup"}
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def access_log_setting():
    setting = TEMPLATE["Resources"]["AuthApi"]["Properties"]["AccessLogSetting"]
    condition, on, off = setting["If"]
    assert (condition, off) == ("HasAccessLogs", {"Ref": "AWS::NoValue"})
    return on


def test_access_logs_are_one_json_line_with_the_fields_an_operator_needs_and_no_secret():
    text = access_log_setting()["Format"]
    assert "\n" not in text, "one line per request"
    # Every value is a context variable, quoted: valid JSON whatever a variable holds
    # (API Gateway escapes quotes in the values it writes; "-" where there is none).
    variables = re.findall(r"\$[A-Za-z0-9_.]+", text)
    assert sorted(set(variables)) == sorted(set(ACCESS_LOG_FIELDS.values()))
    line = json.loads(text)
    assert line == ACCESS_LOG_FIELDS
    assert ACCESS_LOG_REQUIRED <= set(line)
    for forbidden in ["$input", "$method", "$stageVariables", "header", "Authorization", "claims", "$context.path"]:
        assert forbidden.lower() not in text.lower(), forbidden
    # The one value the client writes freely comes first: a forged field (were a quote not
    # escaped) is followed, and overridden, by the real one.
    assert next(iter(line)) == "userAgent"


def test_access_logs_go_to_their_group_after_the_accounts_logging_role_is_set():
    destination = access_log_setting()["DestinationArn"]
    arn = {"GetAtt": "ApiAccessLogGroup.Arn"}
    # When this stack sets the account's role, the reference orders the stage after it.
    assert destination == {
        "If": ["CreatesApiGatewayRole", {"Select": [0, [arn, {"Ref": "ApiGatewayAccountSettings"}]]}, arn]
    }
    group = TEMPLATE["Resources"]["ApiAccessLogGroup"]
    assert group["Condition"] == "HasAccessLogs"
    assert TEMPLATE["Conditions"]["HasAccessLogs"] == {"Equals": [{"Ref": "ApiAccessLogs"}, "Enabled"]}
    assert TEMPLATE["Parameters"]["ApiAccessLogs"]["AllowedValues"] == ["Enabled", "Disabled"]


def test_the_accounts_logging_role_is_created_only_when_asked_and_outlives_the_stack():
    p = TEMPLATE["Parameters"]["ApiGatewayCloudWatchRole"]
    assert (p["Default"], p["AllowedValues"]) == ("Create", ["Create", "Existing"])
    assert TEMPLATE["Conditions"]["CreatesApiGatewayRole"] == {
        "And": [{"Condition": "HasAccessLogs"}, {"Equals": [{"Ref": "ApiGatewayCloudWatchRole"}, "Create"]}]
    }
    role = TEMPLATE["Resources"]["ApiGatewayLogsRole"]
    account = TEMPLATE["Resources"]["ApiGatewayAccountSettings"]
    assert (role["Type"], account["Type"]) == ("AWS::IAM::Role", "AWS::ApiGateway::Account")
    for r in (role, account):
        # Existing: the account's setting is not touched. Deleting the stack must not take
        # away the role every API in the account logs with.
        assert r["Condition"] == "CreatesApiGatewayRole"
        assert (r["DeletionPolicy"], r["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert account["Properties"]["CloudWatchRoleArn"] == {"GetAtt": "ApiGatewayLogsRole.Arn"}
    props = role["Properties"]
    assert props["ManagedPolicyArns"] == [
        {"Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"}
    ]
    assert "Policies" not in props
    (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}


@pytest.mark.parametrize("tracing", ["Active", "Disabled"])
def test_tracing_is_one_parameter_for_every_function_and_the_api(tracing):
    p = TEMPLATE["Parameters"]["Tracing"]
    assert (p["Default"], p["AllowedValues"]) == ("Disabled", ["Active", "Disabled"])
    # A Ref SAM resolves, not an Fn::If: with an Fn::If SAM adds the X-Ray policy always.
    assert TEMPLATE["Globals"]["Function"]["Tracing"] == {"Ref": "Tracing"}
    assert not any("Tracing" in props for props in functions().values())
    api = TEMPLATE["Resources"]["AuthApi"]["Properties"]
    assert api["TracingEnabled"] == {"If": ["HasTracing", True, False]}
    assert TEMPLATE["Conditions"]["HasTracing"] == {"Equals": [{"Ref": "Tracing"}, "Active"]}

    active = tracing == "Active"
    out = transformed(Tracing=tracing)["Resources"]
    for name in EXPECTED:
        assert ("TracingConfig" in out[name]["Properties"]) == active, name
        policies = out[f"{name}Role"]["Properties"]["ManagedPolicyArns"]
        # SAM's X-Ray grant is a managed policy, apart from the inline statements the exact
        # grants above hold (it writes traces, reads nothing).
        assert any("XRay" in str(arn) or "Xray" in str(arn) for arn in policies) == active, name
    (stage,) = [r for r in out.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    assert stage["Properties"]["TracingEnabled"] == {"Fn::If": ["HasTracing", True, False]}


def waf_rule():
    (rule,) = TEMPLATE["Resources"]["AuthWebAcl"]["Properties"]["Rules"]
    return rule


def test_the_web_acl_exists_only_with_a_rate_limit_and_is_attached_to_the_stage():
    p = TEMPLATE["Parameters"]["WafRateLimitPer5Min"]
    assert p["Default"] == "0"
    allowed = re.compile(p["AllowedPattern"])
    # 0 (none) or WAF's minimum of 10 and above.
    # ... up to WAF's maximum, 2,000,000,000.
    candidates = ["0", "9", "10", "05", "100", "1999999999", "2000000000", "2000000001", "9999999999", "-1", ""]
    assert [v for v in candidates if allowed.fullmatch(v)] == ["0", "10", "100", "1999999999", "2000000000"]
    assert TEMPLATE["Conditions"]["HasWaf"] == {"Not": [{"Equals": [{"Ref": "WafRateLimitPer5Min"}, "0"]}]}
    waf = resources_of("AWS::WAFv2::WebACL") | resources_of("AWS::WAFv2::WebACLAssociation")
    assert set(waf) == {"AuthWebAcl", "AuthWebAclAssociation"}
    assert all(r["Condition"] == "HasWaf" for r in waf.values())
    acl = waf["AuthWebAcl"]["Properties"]
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    for config in (acl["VisibilityConfig"], waf_rule()["VisibilityConfig"]):
        assert config["CloudWatchMetricsEnabled"] is True and config["SampledRequestsEnabled"] is True
    association = waf["AuthWebAclAssociation"]["Properties"]
    # AuthApi.Stage: SAM's reference to the stage it generates (which orders the two).
    assert association["ResourceArn"] == {
        "Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${AuthApi}/stages/${AuthApi.Stage}"
    }
    assert association["WebACLArn"] == {"GetAtt": "AuthWebAcl.Arn"}
    out = transformed()["Resources"]
    stage = re.search(r"\$\{(\w+)\}$", out["AuthWebAclAssociation"]["Properties"]["ResourceArn"]["Fn::Sub"])[1]
    assert out[stage]["Type"] == "AWS::ApiGateway::Stage"


def test_the_rate_limit_is_per_ip_and_scoped_to_the_auth_routes():
    rule = waf_rule()
    assert set(rule["Action"]) == {"Block"}
    assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
    rate = rule["Statement"]["RateBasedStatement"]
    assert rate["Limit"] == {"Ref": "WafRateLimitPer5Min"}
    assert (rate["AggregateKeyType"], rate["EvaluationWindowSec"]) == ("IP", 300)
    match = rate["ScopeDownStatement"]["RegexMatchStatement"]
    assert match["FieldToMatch"] == {"UriPath": {}}
    pattern = re.compile(match["RegexString"])
    # WAF sees the URI the client sent: /<stage>/auth/... on the execute-api URL, /auth/...
    # behind a custom domain mapped without a base path. Every auth route either way, and
    # no other route.
    stage = TEMPLATE["Parameters"]["StageName"]["Default"]
    paths = {
        e["Properties"]["Path"]
        for props in functions().values()
        for e in (props.get("Events") or {}).values()
        if e["Type"] == "Api"
    }
    for path in paths:
        for prefix in ("", f"/{stage}", "/Prod_2"):
            assert bool(pattern.search(prefix + path)) == path.startswith("/auth/"), prefix + path
    assert not pattern.search("/admin/users/auth/roles")


def test_reserved_concurrency_defaults_to_not_reserved():
    for name, parameter, condition in [
        ("RegisterFunction", "RegisterReservedConcurrency", "HasRegisterReservedConcurrency"),
        ("LoginFunction", "LoginReservedConcurrency", "HasLoginReservedConcurrency"),
    ]:
        p = TEMPLATE["Parameters"][parameter]
        # Any reservation fails on a new account (limit 10, unreserved must stay >= 10).
        assert (p["Type"], p["Default"], p["MinValue"]) == ("Number", 0, 0)
        assert TEMPLATE["Conditions"][condition] == {"Not": [{"Equals": [{"Ref": parameter}, 0]}]}
        assert functions()[name]["ReservedConcurrentExecutions"] == {
            "If": [condition, {"Ref": parameter}, {"Ref": "AWS::NoValue"}]
        }
    reserving = {n for n, props in functions().items() if "ReservedConcurrentExecutions" in props}
    assert reserving == {"RegisterFunction", "LoginFunction"}
    assert "ReservedConcurrentExecutions" not in TEMPLATE["Globals"]["Function"]


def origin_cases():
    """The origins shared/src/http/browser.rs's unit test checks the code against, with
    whether the code accepts each: one list for both sides."""
    source = (ROOT / "shared" / "src" / "http" / "browser.rs").read_text()
    block = source.split("ORIGIN_CASES", 1)[1].split("];", 1)[0]
    cases = re.findall(r'\("([^"]*)", (true|false)\)', block)
    assert len(cases) >= 10, "cannot read ORIGIN_CASES"
    return [(origin, ok == "true") for origin, ok in cases]


def test_the_issuer_is_empty_or_an_https_url():
    # What config.rs accepts of a deployment (it also takes http:// on loopback, for local runs).
    pattern = re.compile(TEMPLATE["Parameters"]["JwtIssuer"]["AllowedPattern"])
    for ok in ["", "https://auth.example.com", "https://api.example.com/v1"]:
        assert pattern.fullmatch(ok), ok
    for bad in ["jwt-auth", "http://auth.example.com", "https://", "https://a b"]:
        assert not pattern.fullmatch(bad), bad


def test_allowed_origins_admits_exactly_what_the_functions_accept():
    # Anything else would pass `sam deploy` and then fail every cold start, or be refused
    # by the template although the code takes it.
    pattern = re.compile(TEMPLATE["Parameters"]["AllowedOrigins"]["AllowedPattern"])
    for origin, accepted in origin_cases():
        assert bool(pattern.fullmatch(origin)) == accepted, origin
    accepted = [origin for origin, ok in origin_cases() if ok]
    assert pattern.fullmatch(",".join(accepted)) and pattern.fullmatch("")
    assert not pattern.fullmatch(",".join(accepted + ["http://app.example.com"]))


def test_every_function_is_told_where_its_metrics_go():
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    assert variables["METRICS_SERVICE"] == {"Ref": "AWS::StackName"}
    p = TEMPLATE["Parameters"]["MetricsNamespace"]
    pattern = re.compile(p["AllowedPattern"])
    assert p["Default"] == "JwtAuth" and pattern.fullmatch(p["Default"])
    assert not pattern.fullmatch("") and not pattern.fullmatch(" x") and not pattern.fullmatch("a" * 256)
    # What metrics::valid_namespace refuses (metrics would be off, the alarms blind).
    assert not pattern.fullmatch("AWS/Lambda") and not pattern.fullmatch("x ") and pattern.fullmatch("a" * 255)
    assert pattern.fullmatch("Company/Auth #1") and pattern.fullmatch("x")
    # events/env.json (sam local invoke) sets them for every function too.
    for name, env in ENV_JSON.items():
        assert {"METRICS_NAMESPACE", "METRICS_SERVICE"} <= set(env), name


def alarms():
    return resources_of("AWS::CloudWatch::Alarm")


def alarm_metrics(alarm):
    """(namespace, name, dimensions) of every metric an alarm reads."""
    props = alarm["Properties"]
    if "Metrics" in props:
        return [
            (m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"], m["MetricStat"]["Metric"]["Dimensions"])
            for m in props["Metrics"]
            if "MetricStat" in m
        ]
    return [(props["Namespace"], props["MetricName"], props["Dimensions"])]


def test_the_alarms_are_the_expected_ones_and_notify_the_topic_only_when_given():
    assert TEMPLATE["Conditions"]["HasAlarmTopic"] == {"Not": [{"Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    assert TEMPLATE["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert set(alarms()) == {
        "AuthorizerUnavailableAlarm", "RefreshReuseDetectedAlarm", "LoginLockedAlarm", "StoreFaultsAlarm",
        "ApiServerErrorsAlarm", "FunctionThrottlesAlarm", "KeyRotationErrorsAlarm",
        "MailDeliveryFailuresAlarm", "MailerErrorsAlarm",
    }
    for name, alarm in alarms().items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == ALARM_TOPIC, name
        assert props["OKActions"] == ALARM_TOPIC, name
        assert "InsufficientDataActions" not in props, name
        # No data means nothing happened (these count events).
        assert props["TreatMissingData"] == "notBreaching", name
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", name
        assert props["AlarmDescription"].strip() and "Operating it" in props["AlarmDescription"], name
    assert alarms()["KeyRotationErrorsAlarm"]["Condition"] == "IsAsymmetric"
    # Mail's alarms exist where mail does: the dead-letter queue, and the mailer's errors.
    for name in ("MailDeliveryFailuresAlarm", "MailerErrorsAlarm"):
        assert alarms()[name]["Condition"] == "HasEmail", name
    [(namespace, metric, dimensions)] = alarm_metrics(alarms()["MailDeliveryFailuresAlarm"])
    assert (namespace, metric) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dimensions == [{"Name": "QueueName", "Value": {"GetAtt": "MailerDeadLetterQueue.QueueName"}}]


def test_alarms_on_the_services_metrics_use_its_names_and_dimension():
    thresholds = {
        "AuthorizerUnavailable": 1,
        "RefreshReuseDetected": {"Ref": "RefreshReuseAlarmThreshold"},
        "LoginLocked": {"Ref": "LoginLockedAlarmThreshold"},
        "StoreFaults": 1,
    }
    seen = set()
    for name, alarm in alarms().items():
        for namespace, metric, dimensions in alarm_metrics(alarm):
            if namespace != {"Ref": "MetricsNamespace"}:
                assert namespace in ("AWS/ApiGateway", "AWS/Lambda", "AWS/SQS"), (name, namespace)
                continue
            assert metric in METRICS, (name, metric)
            assert dimensions == [{"Name": "Service", "Value": {"Ref": "AWS::StackName"}}], name
            assert alarm["Properties"]["Threshold"] == thresholds[metric], name
            assert alarm["Properties"]["Period"] == 300, name
            seen.add(metric)
    assert seen == set(thresholds)
    assert TEMPLATE["Parameters"]["LoginLockedAlarmThreshold"]["Default"] == 50
    assert TEMPLATE["Parameters"]["RefreshReuseAlarmThreshold"]["Default"] == 1


def test_the_api_alarm_names_the_api_as_its_metrics_do():
    # AWS/ApiGateway names a REST API by its name: set explicitly, to what SAM used anyway.
    assert TEMPLATE["Resources"]["AuthApi"]["Properties"]["Name"] == {"Ref": "AWS::StackName"}
    [(namespace, metric, dimensions)] = alarm_metrics(alarms()["ApiServerErrorsAlarm"])
    assert (namespace, metric) == ("AWS/ApiGateway", "5XXError")
    assert dimensions == [
        {"Name": "ApiName", "Value": {"Ref": "AWS::StackName"}},
        {"Name": "Stage", "Value": {"Ref": "StageName"}},
    ]
    throttles = alarm_metrics(alarms()["FunctionThrottlesAlarm"])
    assert {(n, m) for n, m, _ in throttles} == {("AWS/Lambda", "Throttles")}
    assert [d for _, _, d in throttles] == [
        [{"Name": "FunctionName", "Value": {"Ref": f}}]
        for f in ["RegisterFunction", "LoginFunction", "RefreshFunction", "AuthorizerFunction"]
    ]


def dashboard():
    """The dashboard's body, substituted (placeholder values) and parsed."""
    props = TEMPLATE["Resources"]["Dashboard"]["Properties"]
    params = template.parameter_values(TEMPLATE)
    params.update({"AWS::Region": "us-east-1", "AWS::StackName": "stack"})
    params.update({name: f"fn-{name}" for name in functions()})
    return json.loads(template.evaluate(props["DashboardBody"], params)), params


def test_the_dashboard_graphs_every_metric_and_only_known_ones():
    body, params = dashboard()
    graphed = {}
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        assert widget["properties"]["region"] == "us-east-1"
        for line in widget["properties"]["metrics"]:
            namespace, name, *rest = line
            dimensions = dict(zip(rest[:-1:2], rest[1:-1:2]))
            assert "." not in line[:-1], "every metric in full (no '.' shorthand)"
            graphed.setdefault(namespace, set()).add(name)
            if namespace == params["MetricsNamespace"]:
                assert name in METRICS, name
                assert dimensions.pop("Service") == "stack", name
                if dimensions:
                    assert name in METRICS_PER_FUNCTION and set(dimensions) == {"Function"}, name
            elif namespace == "AWS/ApiGateway":
                assert dimensions == {"ApiName": "stack", "Stage": params["StageName"]}
            elif namespace == "AWS/Lambda":
                assert set(dimensions) == {"FunctionName"} and dimensions["FunctionName"].startswith("fn-")
            else:
                assert namespace == "AWS/WAFV2"
                assert dimensions["WebACL"] == "stack-auth-rate-limit" and dimensions["Rule"] == waf_rule()["Name"]
    assert graphed[params["MetricsNamespace"]] == set(METRICS)
    assert {"Count", "4XXError", "5XXError", "Latency"} <= graphed["AWS/ApiGateway"]
    assert {"Errors", "Throttles", "Duration"} <= graphed["AWS/Lambda"]
    acl = TEMPLATE["Resources"]["AuthWebAcl"]["Properties"]
    assert acl["VisibilityConfig"]["MetricName"] == {"Sub": "${AWS::StackName}-auth-rate-limit"}
    assert waf_rule()["VisibilityConfig"]["MetricName"] == waf_rule()["Name"]


def test_the_dashboard_shows_cold_starts_of_every_function():
    body, params = dashboard()
    per_function = {
        dict(zip(line[2:-1:2], line[3:-1:2]))["Function"]
        for widget in body["widgets"]
        if widget["type"] == "metric"
        for line in widget["properties"]["metrics"]
        if line[:2] == [params["MetricsNamespace"], "ColdStart"]
    }
    assert per_function == set(binaries().values())


def test_the_dashboards_url_is_an_output():
    outputs = TEMPLATE["Outputs"]
    assert "#dashboards:name=${Dashboard}" in outputs["DashboardUrl"]["Value"]["Sub"]


def test_the_metric_list_matches_the_rust_side_when_it_is_there():
    # shared/src/metrics.rs names each metric once (`Metric::X => "X"`, STORE_LATENCY); its
    # own test checks that the template uses every one of them.
    source = ROOT / "shared" / "src" / "metrics.rs"
    if not source.exists():
        pytest.skip("shared/src/metrics.rs is not there yet")
    text = source.read_text()
    names = set(re.findall(r'Metric::\w+ => "(\w+)"', text)) | set(re.findall(r'STORE_LATENCY: &str = "(\w+)"', text))
    assert names == set(METRICS)


def test_the_mailer_runs_on_new_mail_and_on_a_schedule_and_reports_what_it_gave_up_on():
    mailer = TEMPLATE["Resources"]["MailerFunction"]
    assert mailer["Condition"] == "HasEmail", "no sender, no mailer"
    events = mailer["Properties"]["Events"]
    stream = events["Outbox"]["Properties"]
    assert events["Outbox"]["Type"] == "DynamoDB" and stream["Stream"] == {"GetAtt": "OutboxTable.StreamArn"}
    assert stream["FilterCriteria"] == {"Filters": [{"Pattern": '{"eventName": ["INSERT"]}'}]}
    assert stream["MaximumRetryAttempts"] >= 1 and stream["MaximumRecordAgeInSeconds"] <= 3600
    queue = {"GetAtt": "MailerDeadLetterQueue.Arn"}
    assert stream["DestinationConfig"] == {"OnFailure": {"Type": "SQS", "Destination": queue}}
    assert mailer["Properties"]["DeadLetterQueue"] == {"Type": "SQS", "TargetArn": queue}
    assert events["Sweep"] == {"Type": "Schedule", "Properties": {"Schedule": "rate(5 minutes)"}}
    # SES only from the configured sender.
    (send,) = [s for s in statements(mailer["Properties"]) if "ses:SendEmail" in as_list(s["Action"])]
    assert send["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "EmailFrom"}}}
    # The stream carries only new items' images; AppUrl comes with EmailFrom.
    assert TEMPLATE["Resources"]["OutboxTable"]["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    rule = TEMPLATE["Rules"]["AppUrlWithEmail"]
    assert rule["RuleCondition"] == {"Not": [{"Equals": [{"Ref": "EmailFrom"}, ""]}]}
    assert rule["Assertions"][0]["Assert"] == {"Not": [{"Equals": [{"Ref": "AppUrl"}, ""]}]}
