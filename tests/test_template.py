"""template.yaml, read statically: least privilege per function, and configuration wiring.

Each function is granted exactly the DynamoDB actions its code uses and reads the signing
secret only if it signs or verifies tokens; the authorizer cache cannot outlive what
token verification tolerates; every variable a function reads reaches it. No AWS and no
DynamoDB needed.
"""

import json
import pathlib
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import local_api  # noqa: E402
from dynamodb_tables import CfnLoader  # noqa: E402

TEMPLATE = yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)
ENV_JSON = json.loads((ROOT / "events" / "env.json").read_text())
TABLES = {"users": "UsersTable", "revoked": "RevokedTokensTable", "sessions": "SessionsTable"}

# Which secrets a function may read, per SigningAlgorithm: one that signs reads the HMAC
# secret, or the private key and the public key set; one that verifies, the HMAC secret or
# only the public set; the JWKS function only the public set (nothing with HMAC).
SIGNS = {"HS256": {"JwtSigningSecret"}, "RS256": {"JwtPrivateKeySecret", "JwtPublicKeysSecret"}}
VERIFIES = {"HS256": {"JwtSigningSecret"}, "RS256": {"JwtPublicKeysSecret"}}
PUBLISHES = {"HS256": set(), "RS256": {"JwtPublicKeysSecret"}}
NOTHING = {"HS256": set(), "RS256": set()}
ALGORITHMS = ["HS256", "RS256"]

# Per function: the secrets it reads (above), and every DynamoDB action it may call, on
# which table. A TransactWriteItems needs the action of each of its items (register's two
# Puts: PutItem). Exact: an unused grant fails too.
EXPECTED = {
    "RegisterFunction": (SIGNS, {"PutItem users", "PutItem sessions"}),
    "LoginFunction": (SIGNS, {"BatchGetItem users", "UpdateItem users", "DeleteItem users", "PutItem sessions"}),
    "RefreshFunction": (
        SIGNS,
        {"GetItem users", "BatchGetItem users", "BatchGetItem revoked", "PutItem revoked", "UpdateItem sessions"},
    ),
    "LogoutFunction": (NOTHING, {"UpdateItem users", "PutItem revoked"}),
    "MeFunction": (NOTHING, set()),
    "DiscoveryFunction": (PUBLISHES, set()),
    "PreflightFunction": (NOTHING, set()),
    "AdminFunction": (NOTHING, {"GetItem users", "UpdateItem users"}),
    "AccountFunction": (
        SIGNS,
        {
            "BatchGetItem users", "GetItem users", "UpdateItem users", "DeleteItem users",
            "BatchGetItem revoked", "PutItem revoked",
            "Query sessions", "BatchGetItem sessions", "PutItem sessions", "DeleteItem sessions",
            "BatchWriteItem sessions",
        },
    ),
    "AuthorizerFunction": (VERIFIES, {"BatchGetItem users", "BatchGetItem revoked"}),
    # The rotation steps on the private key, and publishing the public set; no table.
    "KeyRotationFunction": (
        NOTHING,
        {
            'secretsmanager:DescribeSecret {"Ref": "JwtPrivateKeySecret"}',
            'secretsmanager:GetSecretValue {"Ref": "JwtPrivateKeySecret"}',
            'secretsmanager:PutSecretValue {"Ref": "JwtPrivateKeySecret"}',
            'secretsmanager:UpdateSecretVersionStage {"Ref": "JwtPrivateKeySecret"}',
            'secretsmanager:PutSecretValue {"Ref": "JwtPublicKeysSecret"}',
        },
    ),
}

NO_VALUE = object()


def under(value, algorithm):
    """`value` with the template's Fn::If resolved for SigningAlgorithm = `algorithm`."""
    conditions = {"IsHmac": algorithm == "HS256", "IsAsymmetric": algorithm != "HS256"}
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
    assert TEMPLATE["Parameters"]["SigningAlgorithm"]["AllowedValues"] == ["RS256", "ES256", "EdDSA", "HS256"]


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
        reads_private = "JwtPrivateKeySecret" in reads[algorithm] or name == "KeyRotationFunction"
        assert (private == {"Ref": "JwtPrivateKeySecret"}) == reads_private, name


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


def test_login_writes_only_throttle_items_password_hashes_and_new_session_rows():
    login = statements(functions()["LoginFunction"])
    writes = [s for s in login if set(as_list(s["Action"])) & WRITES]
    rows = [s for s in writes if [table_of(r) for r in as_list(s["Resource"])] == ["sessions"]]
    assert len(rows) == 1 and as_list(rows[0]["Action"]) == ["dynamodb:PutItem"]
    writes = [s for s in writes if s is not rows[0]]
    assert all(table_of(r) == "users" for s in writes for r in as_list(s["Resource"]))
    assert all(set(as_list(s["Action"])) <= WRITES for s in writes), "no write shares a statement with a read"

    throttle = [s for s in writes if "dynamodb:DeleteItem" in as_list(s["Action"])]
    assert len(throttle) == 1
    assert set(throttle[0]["Action"]) == {"dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    assert throttle[0]["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["login#*"]}}

    rehash = [s for s in writes if s is not throttle[0]]
    assert len(rehash) == 1
    assert as_list(rehash[0]["Action"]) == ["dynamodb:UpdateItem"]
    condition = rehash[0]["Condition"]
    assert sorted(condition["ForAllValues:StringEquals"]["dynamodb:Attributes"]) == ["password_hash", "username"]
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
    # The local API passes the template's default on (scripts/local_api.py).
    assert local_api.PARAMETER_ENV[parameter] == variable


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


# Writes of the functions anyone signed in can reach (logout) or that change who may do
# what (admin) are held to the attributes and keys their code writes.
USER_ITEM_ONLY = {"ForAllValues:StringNotLike": {"dynamodb:LeadingKeys": ["*#*"]}}


@pytest.mark.parametrize(
    "name, attributes",
    [
        ("LogoutFunction", ["sessions_valid_after", "username"]),
        ("AdminFunction", ["disabled", "roles", "sessions_valid_after", "username"]),
        ("AccountFunction", ["disabled", "password_hash", "sessions_valid_after", "user_id", "username"]),
    ],
)
def test_user_item_updates_are_limited_to_the_attributes_the_code_writes(name, attributes):
    updates = [
        s
        for s in statements(functions()[name])
        if "dynamodb:UpdateItem" in as_list(s["Action"]) and table_of(s["Resource"]) == "users"
    ]
    # Every other UpdateItem of the users table is held to the throttle's "login#" items.
    counters = [s for s in updates if s.get("Condition") == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["login#*"]}}]
    updates = [s for s in updates if s not in counters]
    assert len(updates) == 1 and as_list(updates[0]["Action"]) == ["dynamodb:UpdateItem"]
    condition = updates[0]["Condition"]
    assert sorted(condition["ForAllValues:StringEquals"]["dynamodb:Attributes"]) == attributes
    assert condition["ForAllValues:StringNotLike"] == USER_ITEM_ONLY["ForAllValues:StringNotLike"]
    assert condition["StringEqualsIfExists"] == {"dynamodb:ReturnValues": ["NONE"]}


@pytest.mark.parametrize("name", ["LogoutFunction", "AccountFunction"])
def test_logout_and_ending_a_session_write_only_session_revocations(name):
    puts = [
        s
        for s in statements(functions()[name])
        if "dynamodb:PutItem" in as_list(s["Action"]) and table_of(s["Resource"]) == "revoked"
    ]
    assert len(puts) == 1 and as_list(puts[0]["Action"]) == ["dynamodb:PutItem"]
    assert puts[0]["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["session#*"]}}


def test_the_cookie_path_is_the_stage_auth_path_unless_configured():
    sys.path.insert(0, str(ROOT / "scripts"))
    import cfn_eval

    value = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["COOKIE_PATH"]
    conditions = TEMPLATE["Conditions"]
    default = cfn_eval.parameter_values(TEMPLATE)
    assert cfn_eval.evaluate(value, default, conditions) == "/" + str(default["StageName"]) + "/auth"
    custom = cfn_eval.parameter_values(TEMPLATE, {"CookiePath": "/auth"})
    assert cfn_eval.evaluate(value, custom, conditions) == "/auth"
