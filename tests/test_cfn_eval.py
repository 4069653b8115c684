"""scripts/devtools/template.py: the intrinsics the local API evaluates to read template.yaml as API
Gateway would, including the gateway responses' CORS headers."""

import pytest
from devtools.template import NO_VALUE, Unsupported, evaluate, load, parameter_values

TEMPLATE = load()
CONDITIONS = TEMPLATE.get("Conditions", {})


def unauthorized_headers(origins):
    params = parameter_values(TEMPLATE, {"AllowedOrigins": origins})
    api = TEMPLATE["Resources"]["AuthApi"]["Properties"]
    headers = api["GatewayResponses"]["UNAUTHORIZED"]["ResponseParameters"]["Headers"]
    return evaluate(headers, params, CONDITIONS)


def test_gateway_responses_carry_the_first_allowed_origin_only_when_origins_are_configured():
    assert unauthorized_headers("https://a.example,https://b.example")["Access-Control-Allow-Origin"] == "'https://a.example'"
    assert unauthorized_headers("https://a.example")["Vary"] == "'Origin'"
    # A page may read the challenge and Retry-After of the gateway's own answers too.
    assert unauthorized_headers("https://a.example")["Access-Control-Expose-Headers"] == "'Retry-After, WWW-Authenticate'"
    none = unauthorized_headers("")
    assert not {"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Vary", "Access-Control-Expose-Headers"} & set(none)
    assert none["WWW-Authenticate"] == "'Bearer error=\"invalid_token\"'"


def test_the_supported_intrinsics():
    params = {"Stage": "v1", "List": "a,b,c"}
    assert evaluate({"Fn::Sub": "/${Stage}/auth"}, params) == "/v1/auth"
    assert evaluate({"Fn::Select": [1, {"Fn::Split": [",", {"Ref": "List"}]}]}, params) == "b"
    conditions = {"On": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Stage"}, ""]}]}}
    assert evaluate({"Fn::If": ["On", "yes", {"Ref": "AWS::NoValue"}]}, params, conditions) == "yes"
    assert evaluate({"k": {"Ref": "AWS::NoValue"}, "j": 1}, params) == {"j": 1}
    assert evaluate({"Ref": "AWS::NoValue"}, params) is NO_VALUE
    with pytest.raises(Unsupported):
        evaluate({"Fn::GetAtt": ["X", "Arn"]}, params)
    with pytest.raises(Unsupported):
        evaluate({"Ref": "Missing"}, params)
