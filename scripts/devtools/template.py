"""template.yaml, read: the CloudFormation YAML loader, and the one evaluator of the few
intrinsic functions the tools need resolved (the local API's gateway responses, the
dashboard the tests parse, the MemorySize the cold-start benchmark gives each function),
with given parameter values, as CloudFormation would for the same parameters.

Supported: Ref (parameters, AWS::NoValue), Fn::If with Conditions (Fn::Equals, Fn::Not,
Fn::And, Fn::Or, Condition), Fn::Sub (string or [string, variables]), Fn::Select,
Fn::Split. Anything else is an error, not a guess.
"""

import re

import yaml

from devtools import ROOT

TEMPLATE = ROOT / "template.yaml"

NO_VALUE = object()
# YAML short forms (!If, !Sub…) as CfnLoader reads them.
SHORT_FORMS = {"If", "Sub", "Select", "Split", "Equals", "Not", "And", "Or", "GetAtt", "Join", "FindInMap", "ImportValue"}


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, ...) as plain values."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


CfnLoader.add_multi_constructor("!", _tag)


def load(path=TEMPLATE):
    """template.yaml as plain data, short forms as one-key mappings ({"Ref": ...}); a
    fresh copy per call."""
    return yaml.load(path.read_text(), Loader=CfnLoader)


class Unsupported(ValueError):
    pass


def evaluate(value, params, conditions=None):
    """`value` with every intrinsic resolved; NO_VALUE where AWS::NoValue applies."""
    conditions = conditions or {}

    def ev(v):
        if isinstance(v, list):
            return [x for x in (ev(i) for i in v) if x is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) != 1:
            return {k: x for k, x in ((k, ev(i)) for k, i in v.items()) if x is not NO_VALUE}
        (fn, arg), = v.items()
        if fn in SHORT_FORMS:
            fn = "Fn::" + fn
        if fn == "Ref":
            if arg == "AWS::NoValue":
                return NO_VALUE
            if arg in params:
                return params[arg]
            raise Unsupported(f"Ref {arg!r}: not a parameter the local API knows")
        if fn == "Fn::If":
            name, yes, no = arg
            return ev(yes) if condition(name) else ev(no)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], {k: ev(x) for k, x in arg[1].items()})
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(variables[m[1]] if m[1] in variables else ev({"Ref": m[1]})), text)
        if fn == "Fn::Select":
            index, items = arg
            return ev(items)[int(ev(index))]
        if fn == "Fn::Split":
            sep, text = arg
            return ev(text).split(sep)
        if fn == "Condition":
            return condition(arg)
        if fn == "Fn::Equals":
            a, b = (ev(x) for x in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not ev(arg[0])
        if fn == "Fn::And":
            return all(ev(x) for x in arg)
        if fn == "Fn::Or":
            return any(ev(x) for x in arg)
        if fn.startswith("Fn::"):
            raise Unsupported(f"{fn} is not supported by devtools.template")
        return {fn: ev(arg)}

    def condition(name):
        if name not in conditions:
            raise Unsupported(f"no condition {name!r} in the template")
        return bool(ev(conditions[name]))

    return ev(value)


def parameter_values(doc, overrides=None):
    """The template's parameter defaults, with `overrides` (name -> value) applied."""
    values = {name: str(p.get("Default", "")) for name, p in (doc.get("Parameters") or {}).items()}
    values.update({k: str(v) for k, v in (overrides or {}).items()})
    return values


def binaries(doc):
    """Function logical id -> the binary it runs (BuildProperties.Binary)."""
    return {
        logical_id: binary
        for logical_id, resource in doc["Resources"].items()
        if (binary := ((resource.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary"))
    }


def memory_sizes(doc, overrides=None):
    """MemorySize per binary as deployed with the parameter values `overrides` (the others
    at their defaults; the Globals' MemorySize where a function sets none)."""
    params = parameter_values(doc, overrides)
    conditions = doc.get("Conditions") or {}
    default = evaluate(doc["Globals"]["Function"].get("MemorySize", 128), params, conditions)
    return {
        binary: int(evaluate(doc["Resources"][logical_id]["Properties"].get("MemorySize", default), params, conditions))
        for logical_id, binary in binaries(doc).items()
    }
