"""What the local API reads from template.yaml: every `Api` event of an
`AWS::Serverless::Function` as a route of that function (behind the REQUEST authorizer when
the event names it), the authorizer's ROUTE_ROLES, the stage, and the GatewayResponses with
their intrinsics evaluated for this run's parameter values (devtools.template).
"""

import json

from devtools import template

# Template parameter -> the variable the functions read.
PARAMETER_ENV = {
    "SigningAlgorithm": "JWT_ALGORITHM",
    "JwtIssuer": "JWT_ISSUER",
    "JwtAudience": "JWT_AUDIENCE",
    "AccessTokenTtlSeconds": "ACCESS_TOKEN_TTL_SECONDS",
    "RefreshTokenTtlSeconds": "REFRESH_TOKEN_TTL_SECONDS",
    "SessionMaxLifetimeSeconds": "SESSION_MAX_LIFETIME_SECONDS",
    "RefreshReuseGraceSeconds": "REFRESH_REUSE_GRACE_SECONDS",
    "RequireVerifiedEmail": "REQUIRE_VERIFIED_EMAIL",
    "AdminRequiresMfa": "ADMIN_REQUIRES_MFA",
    "PasswordResetTtlSeconds": "PASSWORD_RESET_TTL_SECONDS",
    "LegacyCognitoUserPoolId": "LEGACY_COGNITO_USER_POOL_ID",
    "LegacyCognitoClientId": "LEGACY_COGNITO_CLIENT_ID",
    "LoginLockSeconds": "LOGIN_LOCK_SECONDS",
    "LoginNameMaxFailures": "LOGIN_NAME_MAX_FAILURES",
    "LoginNameWindowSeconds": "LOGIN_NAME_WINDOW_SECONDS",
    "AllowedOrigins": "ALLOWED_ORIGINS",
    "CookieSameSite": "COOKIE_SAME_SITE",
}


def _unquote(value):
    # Gateway response header values are API Gateway mapping expressions: 'literal'.
    value = str(value)
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == "'" else value


def parameters(doc, env):
    """The template's parameter values for this run: defaults, overridden by the variables
    of PARAMETER_ENV set in `env` (e.g. ALLOWED_ORIGINS for AllowedOrigins)."""
    given = {p: env[v] for p, v in PARAMETER_ENV.items() if p in doc["Parameters"] and env.get(v) is not None}
    return template.parameter_values(doc, given)


def _header_values(headers, params, conditions):
    # Values may be intrinsics (the CORS headers depend on AllowedOrigins); AWS::NoValue
    # drops the header, as CloudFormation does.
    evaluated = template.evaluate(headers or {}, params, conditions)
    return {k: _unquote(v) for k, v in evaluated.items()}


def wiring(doc, params):
    """Routes, stage and gateway responses, as the local API reads them, for the template
    parameter values `params`."""
    resources = doc["Resources"]
    api = next(props for props in resources.values() if props["Type"] == "AWS::Serverless::Api")["Properties"]
    routes = []
    for props in resources.values():
        if props["Type"] != "AWS::Serverless::Function":
            continue
        binary = props.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        for event in (props["Properties"].get("Events") or {}).values():
            if event["Type"] != "Api":
                continue
            e = event["Properties"]
            authorizer = (e.get("Auth") or {}).get("Authorizer")
            routes.append(
                {
                    "method": e["Method"].upper(),
                    "path": e["Path"],
                    "function": binary,
                    "authorizer": bool(authorizer) and authorizer != "NONE",
                }
            )
    responses = {}
    conditions = doc.get("Conditions") or {}
    for kind, r in (api.get("GatewayResponses") or {}).items():
        responses[kind] = {
            "status": int(r["StatusCode"]) if "StatusCode" in r else None,
            "headers": _header_values((r.get("ResponseParameters") or {}).get("Headers"), params, conditions),
            "body": (r.get("ResponseTemplates") or {}).get("application/json"),
        }
    stage = doc["Parameters"]["StageName"]["Default"]
    return {"stage": stage, "routes": routes, "gateway_responses": responses}


def authorizer_route_roles(doc):
    fn = doc["Resources"]["AuthorizerFunction"]["Properties"]
    return json.loads(fn["Environment"]["Variables"]["ROUTE_ROLES"])
