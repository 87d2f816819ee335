"""Evaluate a Terraform root module offline, far enough to check what it would create.

python-hcl2 parses the .tf files; this walks its syntax tree and evaluates expressions with
Terraform's rules for the subset infra/ uses: variables and their defaults, locals,
for/if expressions, conditionals, templates, `for_each`/`count`, `dynamic` blocks and the
built-in functions listed in FUNCTIONS. Values only known after apply (attributes of other
resources and data sources) become :class:`Ref` (or :class:`Template` inside strings), so a
test can still check *which* resource instance an attribute points at. Referencing a
resource instance key that the resource's own for_each does not produce is an error, as in
Terraform. No provider is needed; an unsupported construct raises NotImplementedError.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hcl2.parser import parser as hcl_parser
from hcl2.utils import process_escape_sequences
from lark import Token, Tree


class EvalError(Exception):
    """What Terraform would report as an error while evaluating (caught by try/can)."""


@dataclass(frozen=True)
class Ref:
    """A value known only after apply: resource/data attribute path."""

    parts: tuple[Any, ...]

    def __str__(self) -> str:
        text = ".".join(str(p) for p in self.parts[:3] if not isinstance(p, Key)) if self.parts[0] == "data" else ""
        out = ""
        for i, part in enumerate(self.parts):
            if isinstance(part, Key):
                out += f"[{json.dumps(part.value)}]"
            else:
                out += ("." if i else "") + str(part)
        return out or text

    @property
    def instance(self) -> tuple[str, Any] | None:
        """("type.name", key) of the resource instance referenced, if keyed."""
        offset = 1 if self.parts[0] == "data" else 0
        head = self.parts[offset : offset + 2]
        key = self.parts[offset + 2] if len(self.parts) > offset + 2 else None
        return (".".join(head), key.value if isinstance(key, Key) else None)


@dataclass(frozen=True)
class Key:
    value: Any


@dataclass(frozen=True)
class Template:
    """A string with unknown parts."""

    parts: tuple[Any, ...]

    def __str__(self) -> str:
        return "".join(p if isinstance(p, str) else "${" + str(p) + "}" for p in self.parts)


class TSet(tuple):
    """A Terraform set (ordered like Terraform orders a set of strings)."""


UNKNOWN = (Ref, Template)


def _is_unknown(value: Any) -> bool:
    return isinstance(value, UNKNOWN)


def _str(value: Any) -> str | Template:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if value is None:
        raise EvalError("cannot use a null value in a string template")
    if _is_unknown(value):
        return Template((value,))
    raise EvalError(f"cannot convert {type(value).__name__} to string")


def _iterate(collection: Any) -> list[tuple[Any, Any]]:
    if isinstance(collection, dict):
        return [(k, collection[k]) for k in sorted(collection)]
    if isinstance(collection, TSet):
        return [(v, v) for v in collection]
    if isinstance(collection, (list, tuple)):
        return list(enumerate(collection))
    if collection is None:
        raise EvalError("cannot iterate over a null value")
    raise EvalError(f"cannot iterate over {type(collection).__name__}")


def _toset(values: Any) -> TSet:
    items = [v for _, v in _iterate(values)]
    if any(isinstance(v, (dict, list)) for v in items):
        raise NotImplementedError("sets of collections")
    return TSet(sorted(set(items), key=lambda v: (str(type(v)), v)))


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                return float(value) if "." in value else int(value)
            except ValueError:
                pass
        raise EvalError(f"a number is required, got {value!r}")
    return value


def _coalesce(*values: Any) -> Any:
    for value in values:
        if value is not None and value != "":
            return value
    raise EvalError("coalesce: no non-null, non-empty argument")


def _regex(pattern: str, text: Any) -> Any:
    if not isinstance(text, str):
        raise EvalError("regex: a string is required")
    match = re.search(pattern, text)
    if not match:
        raise EvalError(f"regex: pattern {pattern!r} did not match {text!r}")
    if match.groupdict():
        return match.groupdict()
    return list(match.groups()) if match.groups() else match.group(0)


def _index(collection: Any, key: Any) -> Any:
    if isinstance(collection, dict):
        if key not in collection:
            raise EvalError(f"no key {key!r} in map with keys {sorted(collection)}")
        return collection[key]
    if isinstance(collection, (list, tuple)) and not isinstance(collection, TSet):
        key = _number(key)
        if not 0 <= key < len(collection):
            raise EvalError(f"index {key} out of range")
        return collection[int(key)]
    raise EvalError(f"cannot index {type(collection).__name__} with {key!r}")


class Module:
    """A Terraform root module: its .tf files, variables given, and evaluation."""

    def __init__(self, directory: Path, variables: dict[str, Any] | None = None) -> None:
        self.directory = directory
        self.files = sorted(directory.glob("*.tf"))
        self.variables: dict[str, Tree] = {}
        self.locals: dict[str, Tree] = {}
        self.resources: dict[tuple[str, str], Tree] = {}
        self.data: dict[tuple[str, str], Tree] = {}
        self.checks: dict[str, Tree] = {}
        self.outputs: dict[str, Tree] = {}
        for path in self.files:
            tree = hcl_parser().parse(path.read_text())
            for kind, labels, body in _blocks(tree.children[0]):
                if kind == "variable":
                    self.variables[labels[0]] = body
                elif kind == "locals":
                    for name, expr in _attributes(body).items():
                        if name in self.locals:
                            raise EvalError(f"local.{name} defined twice")
                        self.locals[name] = expr
                elif kind == "resource":
                    self.resources[(labels[0], labels[1])] = body
                elif kind == "data":
                    self.data[(labels[0], labels[1])] = body
                elif kind == "check":
                    self.checks[labels[0]] = body
                elif kind == "output":
                    self.outputs[labels[0]] = body
        self.given = dict(variables or {})
        self._locals: dict[str, Any] = {}
        self._evaluating: set[str] = set()
        self._instances: dict[tuple[str, str], dict[Any, dict[str, Any]]] = {}
        self.functions = self._functions()

    # -- values -------------------------------------------------------------------------

    def var(self, name: str) -> Any:
        if name in self.given:
            return self.given[name]
        if name not in self.variables:
            raise EvalError(f"no variable {name!r}")
        attrs = _attributes(self.variables[name])
        if "default" not in attrs:
            raise EvalError(f"variable {name!r} has no default and was not given")
        return self.eval(attrs["default"], {})

    def local(self, name: str) -> Any:
        if name in self._locals:
            return self._locals[name]
        if name not in self.locals:
            raise EvalError(f"no local {name!r}")
        if name in self._evaluating:
            raise EvalError(f"local.{name} depends on itself")
        self._evaluating.add(name)
        try:
            value = self.eval(self.locals[name], {})
        finally:
            self._evaluating.discard(name)
        self._locals[name] = value
        return value

    def instances(self, rtype: str, name: str) -> dict[Any, dict[str, Any]]:
        """{instance key (None when single): evaluated attributes and nested blocks}."""
        if (rtype, name) in self._instances:
            return self._instances[(rtype, name)]
        body = self.resources.get((rtype, name))
        if body is None:
            raise EvalError(f"no resource {rtype}.{name}")
        attrs = _attributes(body)
        if "for_each" in attrs:
            collection = self.eval(attrs["for_each"], {})
            if _is_unknown(collection):
                raise EvalError(f"{rtype}.{name}: for_each is unknown before apply")
            pairs = _iterate(collection)
            if isinstance(collection, (list, tuple)) and not isinstance(collection, TSet):
                raise EvalError(f"{rtype}.{name}: for_each needs a map or a set, got a list")
            scopes = {key: {"each": {"key": key, "value": value}} for key, value in pairs}
        elif "count" in attrs:
            count = _number(self.eval(attrs["count"], {}))
            scopes = {i: {"count": {"index": i}} for i in range(int(count))}
        else:
            scopes = {None: {}}
        result = {key: self.body(body, scope) for key, scope in scopes.items()}
        self._instances[(rtype, name)] = result
        return result

    def body(self, body: Tree, scope: dict[str, Any]) -> dict[str, Any]:
        """Attributes (evaluated) and nested blocks (lists of bodies) of a block."""
        out: dict[str, Any] = {}
        for child in body.children:
            if not isinstance(child, Tree):
                continue
            if child.data == "attribute":
                name = _name(child.children[0])
                if name in ("for_each", "count", "depends_on"):
                    continue
                out[name] = self.eval(_expr(child), scope)
            elif child.data == "block":
                kind, labels, inner = _block_parts(child)
                if kind in ("lifecycle",):
                    continue
                if kind == "dynamic":
                    attrs = _attributes(inner)
                    iterator = labels[0]
                    content = next(b for k, _, b in _blocks(inner) if k == "content")
                    for key, value in _iterate(self.eval(attrs["for_each"], scope)):
                        inner_scope = {**scope, iterator: {"key": key, "value": value}}
                        out.setdefault(labels[0], []).append(self.body(content, inner_scope))
                    continue
                entry = self.body(inner, scope)
                if labels:
                    entry["__labels__"] = labels
                out.setdefault(kind, []).append(entry)
        return out

    def check_assertions(self) -> dict[str, list[tuple[Any, Any]]]:
        """{check name: [(condition value, error message value)]}."""
        result = {}
        for name, body in self.checks.items():
            result[name] = [
                (self.eval(_attributes(b)["condition"], {}), self.eval(_attributes(b)["error_message"], {}))
                for kind, _, b in _blocks(body)
                if kind == "assert"
            ]
        return result

    # -- expressions ----------------------------------------------------------------------

    def eval(self, node: Any, scope: dict[str, Any]) -> Any:  # noqa: C901 - one dispatch on the grammar's rules
        if isinstance(node, Token):
            raise NotImplementedError(f"token {node.type}")
        kind = node.data
        kids = [c for c in node.children if not (isinstance(c, Tree) and c.data == "new_line_or_comment")]
        trees = [c for c in kids if isinstance(c, Tree)]
        if kind == "expr_term":
            return self.eval(trees[0], scope)
        if kind == "int_lit":
            return int(kids[0])
        if kind == "float_lit":
            return float(kids[0])
        if kind == "literal_value":
            return {"true": True, "false": False, "null": None}[str(kids[0])]
        if kind == "string":
            return self._template(kids, scope)
        if kind in ("heredoc_template", "heredoc_template_trim"):
            text = str(kids[0])
            return text[text.index("\n") + 1 : text.rstrip("\n").rindex("\n") + 1]
        if kind == "tuple":
            return [self.eval(t, scope) for t in trees]
        if kind == "object":
            out = {}
            for elem in trees:
                key_node, value_node = [c for c in elem.children if isinstance(c, Tree)]
                out[self._object_key(key_node, scope)] = self.eval(value_node, scope)
            return out
        if kind == "identifier":
            return self._identifier(_name(node), scope)
        if kind == "get_attr_expr_term":
            base = self.eval(trees[0], scope)
            attr = _name([c for c in trees[1].children if isinstance(c, Tree)][0])
            return self._get_attr(base, attr)
        if kind == "index_expr_term":
            base = self.eval(trees[0], scope)
            index = trees[1]
            if index.data == "short_index":
                key = int(str([c for c in index.children if isinstance(c, Token) and c.type == "INT_LITERAL"][0]))
            else:
                key = self.eval([c for c in index.children if isinstance(c, Tree) and c.data != "new_line_or_comment"][0], scope)
            return self._get_index(base, key)
        if kind == "function_call":
            name = _name(trees[0])
            args_node = next((t for t in trees[1:] if t.data == "arguments"), None)
            args = [c for c in args_node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"] if args_node else []
            expand = args_node is not None and any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in args_node.children)
            return self._call(name, args, scope, expand)
        if kind == "conditional":
            cond = self.eval(trees[0], scope)
            if _is_unknown(cond):
                return Ref(("unknown-condition",))
            if not isinstance(cond, bool):
                raise EvalError(f"condition is not a bool: {cond!r}")
            return self.eval(trees[1] if cond else trees[2], scope)
        if kind == "binary_op":
            left = self.eval(trees[0], scope)
            term = trees[1]
            operator = str([c for c in term.children if isinstance(c, Tree) and c.data == "binary_operator"][0].children[0])
            right_node = [c for c in term.children if isinstance(c, Tree) and c.data not in ("binary_operator", "new_line_or_comment")][0]
            if operator == "&&" and left is False:
                return False
            if operator == "||" and left is True:
                return True
            return _binary(operator, left, self.eval(right_node, scope))
        if kind == "unary_op":
            operator, operand = str(kids[0]), self.eval(trees[0], scope)
            return (not operand) if operator == "!" else -_number(operand)
        if kind in ("for_tuple_expr", "for_object_expr"):
            return self._for(kind, trees, kids, scope)
        raise NotImplementedError(f"HCL construct {kind!r}")

    def _template(self, kids: list[Any], scope: dict[str, Any]) -> str | Template:
        parts: list[Any] = []
        for part in kids:
            if isinstance(part, Token):
                continue  # the quotes
            inner = part.children[0]
            if isinstance(inner, Token):
                text = str(inner)
                parts.append(text[1:] if inner.type == "ESCAPED_INTERPOLATION" else process_escape_sequences(text))
            elif inner.data == "interpolation":
                expr = [c for c in inner.children if isinstance(c, Tree)][0]
                value = _str(self.eval(expr, scope))
                parts.extend(value.parts if isinstance(value, Template) else [value])
            else:
                raise NotImplementedError(f"template directive {inner.data}")
        if any(not isinstance(p, str) for p in parts):
            return Template(tuple(parts))
        return "".join(parts)

    def _object_key(self, key_node: Tree, scope: dict[str, Any]) -> Any:
        inner = [c for c in key_node.children if isinstance(c, Tree)]
        if inner and inner[0].data == "expr_term":
            term = [c for c in inner[0].children if isinstance(c, Tree)]
            if term and term[0].data == "identifier" and len(inner[0].children) == 1:
                return _name(term[0])  # a bare name is a literal key
        if inner and inner[0].data == "identifier":
            return _name(inner[0])
        if not inner:
            return str(key_node.children[0])
        return _str(self.eval(inner[0], scope))

    def _identifier(self, name: str, scope: dict[str, Any]) -> Any:
        if name in scope:
            return scope[name]
        if name in ("var", "local", "path", "data", "terraform"):
            return Namespace(self, name)
        if any(rtype == name for rtype, _ in self.resources):
            return Namespace(self, "resource", name)
        raise EvalError(f"unknown name {name!r}")

    def _get_attr(self, base: Any, attr: str) -> Any:
        if isinstance(base, Namespace):
            return base.attr(attr)
        if isinstance(base, Ref):
            return Ref(base.parts + (attr,))
        if isinstance(base, dict):
            if attr not in base:
                raise EvalError(f"unsupported attribute {attr!r} (have {sorted(base)})")
            return base[attr]
        raise EvalError(f"cannot read attribute {attr!r} of {type(base).__name__} {base!r}")

    def _get_index(self, base: Any, key: Any) -> Any:
        if isinstance(base, Ref):
            if _is_unknown(key):
                return Ref(base.parts + (Key(str(key)),))
            offset = 1 if base.parts[0] == "data" else 0
            if len(base.parts) == offset + 2 and offset == 0:
                keys = self.instances(base.parts[0], base.parts[1])
                if key not in keys:
                    raise EvalError(f"{base} has no instance {key!r} (has {sorted(map(str, keys))})")
            return Ref(base.parts + (Key(key),))
        return _index(base, key)

    def _for(self, kind: str, trees: list[Tree], kids: list[Any], scope: dict[str, Any]) -> Any:
        intro = trees[0]
        names = [_name(c) for c in intro.children if isinstance(c, Tree) and c.data == "identifier"]
        collection_node = [c for c in intro.children if isinstance(c, Tree) and c.data not in ("identifier", "new_line_or_comment")][0]
        collection = self.eval(collection_node, scope)
        body = trees[1:]
        condition = body[-1] if body and body[-1].data == "for_cond" else None
        if condition is not None:
            body = body[:-1]
        if any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in kids):
            raise NotImplementedError("grouping for expressions (...)")
        out_list: list[Any] = []
        out_map: dict[Any, Any] = {}
        for key, value in _iterate(collection):
            inner = dict(scope)
            if len(names) == 2:
                inner[names[0]], inner[names[1]] = key, value
            else:
                inner[names[0]] = value
            if condition is not None:
                cond_expr = [c for c in condition.children if isinstance(c, Tree) and c.data != "new_line_or_comment"][0]
                keep = self.eval(cond_expr, inner)
                if not isinstance(keep, bool):
                    raise EvalError(f"for condition is not a bool: {keep!r}")
                if not keep:
                    continue
            if kind == "for_tuple_expr":
                out_list.append(self.eval(body[0], inner))
            else:
                out_key = self.eval(body[0], inner)
                if out_key in out_map:
                    raise EvalError(f"duplicate key {out_key!r} in for expression")
                out_map[out_key] = self.eval(body[1], inner)
        return out_list if kind == "for_tuple_expr" else out_map

    def _call(self, name: str, args: list[Tree], scope: dict[str, Any], expand: bool) -> Any:
        if name == "try":
            for arg in args:
                try:
                    return self.eval(arg, scope)
                except EvalError:
                    continue
            raise EvalError("try: no argument could be evaluated")
        if name == "can":
            try:
                self.eval(args[0], scope)
                return True
            except EvalError:
                return False
        if name not in self.functions:
            raise NotImplementedError(f"function {name}()")
        values = [self.eval(a, scope) for a in args]
        if expand:
            values = values[:-1] + [v for _, v in _iterate(values[-1])]
        if any(_is_unknown(v) for v in values) and name not in ("merge", "concat", "tolist", "toset", "compact"):
            return Ref((f"{name}(...)",))
        return self.functions[name](*values)

    def _path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else Path.cwd() / path

    def _functions(self) -> dict[str, Any]:
        def merge(*maps: Any) -> dict:
            out: dict = {}
            for m in maps:
                if m is None:
                    continue
                if not isinstance(m, dict):
                    raise EvalError("merge: arguments must be maps")
                out.update(m)
            return out

        def flatten(values: Any) -> list:
            out: list = []
            for _, v in _iterate(values):
                out.extend(flatten(v) if isinstance(v, (list, tuple)) else [v])
            return out

        return {
            "yamldecode": lambda s: yaml.safe_load(s),
            "jsonencode": lambda v: json.dumps(v, separators=(",", ":"), sort_keys=True),
            "jsondecode": json.loads,
            "base64encode": lambda s: base64.b64encode(s.encode()).decode(),
            "file": lambda p: self._path(p).read_text(),
            "filemd5": lambda p: hashlib.md5(self._path(p).read_bytes()).hexdigest(),
            "fileexists": lambda p: self._path(p).is_file(),
            "startswith": lambda s, p: s.startswith(p),
            "coalesce": _coalesce,
            "regex": _regex,
            "compact": lambda values: [v for _, v in _iterate(values) if v not in (None, "")],
            "concat": lambda *lists: [v for lst in lists for _, v in _iterate(lst)],
            "flatten": flatten,
            "toset": _toset,
            "tolist": lambda values: [v for _, v in _iterate(values)],
            "merge": merge,
            "values": lambda m: [m[k] for k in sorted(m)],
            "keys": lambda m: sorted(m),
            "lookup": lambda m, k, *default: m[k] if k in m else (default[0] if default else _index(m, k)),
            "length": lambda v: len(v),
            "split": lambda sep, s: s.split(sep),
            "join": lambda sep, values: sep.join(_str(v) for _, v in _iterate(values)),
            "element": lambda values, i: values[int(i) % len(values)],
            "replace": lambda s, old, new: s.replace(old, new),
            "lower": str.lower,
            "upper": str.upper,
            "min": lambda *v: min(_number(x) for x in v),
            "max": lambda *v: max(_number(x) for x in v),
            "floor": lambda v: math.floor(_number(v)),
            "sort": lambda values: sorted(v for _, v in _iterate(values)),
            "contains": lambda values, v: v in [x for _, x in _iterate(values)],
        }


class Namespace:
    """var., local., path., data.<type>.<name>, <resource type>.<name>."""

    def __init__(self, module: Module, kind: str, *parts: str) -> None:
        self.module, self.kind, self.parts = module, kind, parts

    def attr(self, name: str) -> Any:
        m = self.module
        if self.kind == "var":
            return m.var(name)
        if self.kind == "local":
            return m.local(name)
        if self.kind == "path":
            if name in ("module", "root"):
                return str(m.directory)
            raise EvalError(f"path.{name}")
        if self.kind == "terraform":
            return "default"
        if self.kind == "data":
            if not self.parts:
                return Namespace(m, "data", name)
            if (self.parts[0], name) not in m.data:
                raise EvalError(f"no data source {self.parts[0]}.{name}")
            return Ref(("data", self.parts[0], name))
        if self.kind == "resource":
            if (self.parts[0], name) not in m.resources:
                raise EvalError(f"no resource {self.parts[0]}.{name}")
            return Ref((self.parts[0], name))
        raise EvalError(f"{self.kind}.{name}")


def _binary(operator: str, left: Any, right: Any) -> Any:
    if operator == "==":
        return left == right and type(left) is type(right) or (_is_num(left) and _is_num(right) and left == right)
    if operator == "!=":
        return not _binary("==", left, right)
    if _is_unknown(left) or _is_unknown(right):
        return Ref((f"({operator})",))
    if operator in ("&&", "||"):
        if not isinstance(left, bool) or not isinstance(right, bool):
            raise EvalError(f"{operator} needs bools")
        return (left and right) if operator == "&&" else (left or right)
    a, b = _number(left), _number(right)
    ops = {
        "+": lambda: a + b,
        "-": lambda: a - b,
        "*": lambda: a * b,
        "/": lambda: a / b,
        "%": lambda: a % b,
        "<": lambda: a < b,
        ">": lambda: a > b,
        "<=": lambda: a <= b,
        ">=": lambda: a >= b,
    }
    return ops[operator]()


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- syntax tree helpers --------------------------------------------------------------------


def _name(node: Tree) -> str:
    if isinstance(node, Token):
        return str(node)
    token = node.children[0]
    return str(token) if isinstance(token, Token) else _name(token)


def _expr(attribute: Tree) -> Tree:
    return [c for c in attribute.children if isinstance(c, Tree)][-1]


def _attributes(body: Tree) -> dict[str, Tree]:
    return {_name(c.children[0]): _expr(c) for c in body.children if isinstance(c, Tree) and c.data == "attribute"}


def _block_parts(block: Tree) -> tuple[str, list[str], Tree]:
    trees = [c for c in block.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]
    kind = _name(trees[0])
    labels = []
    for label in trees[1:-1]:
        if label.data == "string":
            labels.append("".join(str(p.children[0]) for p in label.children if isinstance(p, Tree)))
        else:
            labels.append(_name(label))
    return kind, labels, trees[-1]


def _blocks(body: Tree) -> list[tuple[str, list[str], Tree]]:
    return [_block_parts(c) for c in body.children if isinstance(c, Tree) and c.data == "block"]


def comments(path: Path) -> list[str]:
    """Every `#` comment line of a file (checkov skip annotations live there)."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip().startswith("#")]
