"""shared/functions.json, the one table of the Lambda functions, against what it describes:
template.yaml's functions and their API events, the workspace's function crates, and
Cargo.toml's release profile. The Rust side writes the table (and fails when it is stale);
these tests fail when the table and the template or the build disagree. No AWS, no build.
"""

import json
import pathlib
import tomllib

import pytest
from devtools import functions, template

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = template.load()
TABLE = functions.load()
HTTP = [f for f in TABLE if f.event == "http"]
# The preflight function takes every method no other function takes, on every path (its one
# route in the table, "ANY *"): OPTIONS, and the rest for a 405.
PREFLIGHT = [f for f in HTTP if [(r.method, r.path) for r in f.routes] == [("ANY", "*")]]


def template_functions():
    """Logical id -> properties of every AWS::Serverless::Function."""
    return {k: v for k, v in TEMPLATE["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def api_events(logical_id):
    """(METHOD, path) -> behind the authorizer, for each Api event of the function."""
    events = (template_functions()[logical_id]["Properties"].get("Events") or {}).values()
    routes = {}
    for event in events:
        if event["Type"] != "Api":
            continue
        props = event["Properties"]
        authorizer = (props.get("Auth") or {}).get("Authorizer")
        route = (props["Method"].upper(), props["Path"])
        assert route not in routes, f"{logical_id}: {route} twice"
        routes[route] = bool(authorizer) and authorizer != "NONE"
    return routes


def workspace_binaries():
    """Binary name -> crate directory, for every crate under functions/."""
    found = {}
    for manifest in sorted(ROOT.glob("functions/*/Cargo.toml")):
        crate = tomllib.loads(manifest.read_text())
        for name in [b["name"] for b in crate.get("bin", [])] or [crate["package"]["name"]]:
            assert name not in found, f"binary {name} in {found.get(name)} and {manifest.parent}"
            found[name] = manifest.parent
    return found


def test_the_table_names_each_function_once():
    assert [f.name for f in TABLE], "shared/functions.json lists no function"
    assert len({f.name for f in TABLE}) == len(TABLE)
    assert len({f.logical_id for f in TABLE}) == len(TABLE)


def test_the_tables_functions_are_the_templates():
    assert {f.logical_id for f in TABLE} == set(template_functions())
    # Each runs the binary the table names (what `sam build` builds for it).
    assert template.binaries(TEMPLATE) == {f.logical_id: f.name for f in TABLE}


def test_the_tables_functions_are_the_workspaces_binaries():
    assert {f.name for f in TABLE} == set(workspace_binaries())
    for name, crate in workspace_binaries().items():
        assert crate.name == name, f"functions/{crate.name} builds {name}"


@pytest.mark.parametrize("name", sorted(f.name for f in HTTP if f not in PREFLIGHT))
def test_an_http_functions_routes_are_its_template_api_events(name):
    f = functions.by_name()[name]
    assert {(r.method, r.path) for r in f.routes} == set(api_events(f.logical_id))
    assert len({(r.method, r.path) for r in f.routes}) == len(f.routes), "a route twice"


def test_preflight_takes_any_other_method_on_every_path_of_the_other_http_functions():
    assert len(PREFLIGHT) == 1, "exactly one function has the route ANY *"
    (preflight,) = PREFLIGHT
    paths = {r.path for f in HTTP if f is not preflight for r in f.routes}
    assert set(api_events(preflight.logical_id)) == {("ANY", path) for path in paths}
    assert not any(route.method in {"OPTIONS", "ANY"} for f in HTTP if f is not preflight for route in f.routes)


@pytest.mark.parametrize("name", sorted(f.name for f in TABLE if f.event != "http"))
def test_functions_invoked_otherwise_have_no_routes_and_no_api_events(name):
    f = functions.by_name()[name]
    assert f.routes == ()
    assert api_events(f.logical_id) == {}


@pytest.mark.parametrize("name", sorted(f.name for f in HTTP))
def test_authenticated_routes_are_exactly_those_behind_the_authorizer(name):
    f = functions.by_name()[name]
    wired = api_events(f.logical_id)
    if f in PREFLIGHT:
        # A browser's preflight carries no credentials: never behind the authorizer.
        (route,) = f.routes
        assert not route.authenticated
        assert not any(wired.values())
        return
    for route in f.routes:
        assert wired[(route.method, route.path)] == route.authenticated, (route.method, route.path)


def test_the_roles_each_route_requires_are_the_tables_in_the_template_and_in_events_env_json():
    # ROUTE_ROLES is written out twice (the authorizer's variable in the template, and
    # events/env.json for `sam local invoke`): both are the table's, in the same order.
    (authorizer,) = [f for f in TABLE if f.event == "authorizer"]
    template_value = template_functions()[authorizer.logical_id]["Properties"]["Environment"]["Variables"]["ROUTE_ROLES"]
    env_value = json.loads((ROOT / "events" / "env.json").read_text())[authorizer.logical_id]["ROUTE_ROLES"]
    expected = functions.route_roles()
    assert json.loads(template_value) == expected
    assert json.loads(env_value) == expected
    assert env_value == template_value
    assert all(roles == [] or roles == ["admin"] for roles in expected.values()), expected


def test_the_benchmarks_have_events_for_every_function_on_a_request_path():
    # bench.py and bench_cold.py invoke each such function with these (events/*.json).
    from devtools.invocations import events_for

    events = events_for({"username": "bench", "access_token": "a.b.c"}, iter(()))
    assert set(events) == {f.name for f in TABLE if f.on_request_path}
    for name in ("email", "login", "discovery"):
        assert next(events[name])["httpMethod"]


def test_the_authorizer_and_the_rotation_function_are_the_ones_the_template_wires():
    (authorizer,) = [f for f in TABLE if f.event == "authorizer"]
    (rotation,) = [f for f in TABLE if f.event == "rotation"]
    api = TEMPLATE["Resources"]["AuthApi"]["Properties"]
    assert api["Auth"]["Authorizers"]["TokenAuthorizer"]["FunctionArn"] == {"GetAtt": f"{authorizer.logical_id}.Arn"}
    schedule = TEMPLATE["Resources"]["JwtKeyRotationSchedule"]["Properties"]
    assert schedule["RotationLambdaARN"] == {"GetAtt": f"{rotation.logical_id}.Arn"}
    assert (authorizer.keys, rotation.keys) == ("verify", "rotate")


def test_exactly_the_functions_that_hash_passwords_are_built_at_opt_level_3():
    # Cargo.toml: argon2 at "s" runs at half speed under fat LTO, so the hashing functions'
    # crates are built at 3 (and only they: size first for the rest).
    profile = tomllib.loads((ROOT / "Cargo.toml").read_text())["profile"]["release"]
    names = {f.name for f in TABLE}
    at_3 = {name for name, p in profile.get("package", {}).items() if name in names and p.get("opt-level") == 3}
    assert at_3 == {f.name for f in TABLE if f.hashes_passwords}


def test_every_functions_profile_override_still_strips_its_symbols():
    # A package override resets `strip` to cargo's default ("debuginfo"): each restates it.
    profile = tomllib.loads((ROOT / "Cargo.toml").read_text())["profile"]["release"]
    assert profile["strip"] == "symbols"
    names = {f.name for f in TABLE}
    for name, override in profile.get("package", {}).items():
        if name in names:
            assert override.get("strip") == "symbols", name
