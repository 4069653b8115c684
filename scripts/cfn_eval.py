"""Evaluates the few CloudFormation intrinsic functions template.yaml uses in what the local
API reads from it (gateway response headers), with given parameter values, so the local API
answers what API Gateway would for the same parameters.

Supported: Ref (parameters, AWS::NoValue), Fn::If with Conditions (Fn::Equals, Fn::Not,
Fn::And, Fn::Or, Condition), Fn::Sub (string or [string, variables]), Fn::Select,
Fn::Split. Anything else is an error, not a guess.
"""

import re

NO_VALUE = object()
# YAML short forms (!If, !Sub…) as scripts/dynamodb_tables.py's CfnLoader reads them.
SHORT_FORMS = {"If", "Sub", "Select", "Split", "Equals", "Not", "And", "Or", "GetAtt", "Join", "FindInMap", "ImportValue"}


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
            raise Unsupported(f"{fn} is not supported by scripts/cfn_eval.py")
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
