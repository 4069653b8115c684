"""The Python stack this project replaces, for `make bench` to run side by side: a REST API
REQUEST authorizer on PyJWT + boto3, doing what ours does with one consistent GetItem
(the revocation of the token id). Not part of the service.
"""

import os

import boto3
import jwt

# Cold start: client and key, once, as a careful Python Lambda does.
TABLE = boto3.resource("dynamodb").Table(os.environ["REVOKED_TOKENS_TABLE"])
SECRET = os.environ["JWT_SECRET"]
ISSUER = os.environ["JWT_ISSUER"]
AUDIENCE = os.environ["JWT_AUDIENCE"]


def handler(event, _context):
    header = (event.get("headers") or {}).get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Exception("Unauthorized")
    try:
        claims = jwt.decode(
            token, SECRET, algorithms=["HS256"], issuer=ISSUER, audience=AUDIENCE, leeway=5, options={"require": ["exp", "sub", "jti"]}
        )
    except jwt.PyJWTError:
        raise Exception("Unauthorized")
    if claims.get("token_use") != "access":
        raise Exception("Unauthorized")
    if "Item" in TABLE.get_item(Key={"jti": claims["jti"]}, ConsistentRead=True):
        raise Exception("Unauthorized")
    base = event["methodArn"].split("/", 2)
    return {
        "principalId": claims["sub"],
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": f"{base[0]}/{base[1]}/*"}],
        },
        "context": {"sub": claims["sub"], "username": claims["username"], "roles": ",".join(claims["roles"])},
    }
