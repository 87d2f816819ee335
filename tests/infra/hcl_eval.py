"""Evaluate a Terraform root module offline, far enough to check what it would create.

python-hcl2 parses the .tf files; this walks its syntax tree and evaluates expressions with
Terraform's rules for the subset infra/ uses: variables and their defaults, locals,
for/if expressions, conditionals, templates, `for_each`/`count`, `dynamic` blocks, `moved`
blocks (:meth:`Module.moves`) and the built-in functions of hcl_values.builtin_functions. Values only known after apply (attributes of other
resources and data sources) become :class:`Ref` (or :class:`Template` inside strings), so a
test can still check *which* resource instance an attribute points at. Referencing a
resource instance key that the resource's own for_each does not produce is an error, as in
Terraform. No provider is needed; an unsupported construct raises NotImplementedError.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from hcl2.parser import parser as hcl_parser
from hcl2.utils import process_escape_sequences
from lark import Token, Tree

from tests.infra.hcl_values import (
    EvalError,
    Key,
    Ref,
    Template,
    TSet,
    binary,
    builtin_functions,
    index_value,
    is_unknown,
    iterate,
    number,
    to_string,
)


@functools.cache
def _parse(text: str) -> Tree:
    """One parse per file text in a process: the infra tests evaluate the same .tf files many times
    (a parse of infra/ costs ~1.7 s; evaluation never changes the tree)."""
    return hcl_parser().parse(text)


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
        self.moved: list[Tree] = []
        for path in self.files:
            tree = _parse(path.read_text())
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
                elif kind == "moved":
                    self.moved.append(body)
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
            if is_unknown(collection):
                raise EvalError(f"{rtype}.{name}: for_each is unknown before apply")
            pairs = iterate(collection)
            if isinstance(collection, (list, tuple)) and not isinstance(collection, TSet):
                raise EvalError(f"{rtype}.{name}: for_each needs a map or a set, got a list")
            scopes = {key: {"each": {"key": key, "value": value}} for key, value in pairs}
        elif "count" in attrs:
            count = number(self.eval(attrs["count"], {}))
            scopes = {i: {"count": {"index": i}} for i in range(int(count))}
        else:
            scopes = {None: {}}
        result = {key: self.body(body, scope) for key, scope in scopes.items()}
        self._instances[(rtype, name)] = result
        return result

    def moves(self) -> list[tuple[Address, Address]]:
        """The `moved` blocks as (from, to) addresses, each checked as Terraform would plan it.

        `to` must name a resource (or, with a key, an instance its for_each produces) and `from`
        must name no resource left in the module, or the move would never apply.
        """
        result = []
        for body in self.moved:
            attrs = _attributes(body)
            source, target = self._address(attrs["from"]), self._address(attrs["to"])
            if source[:2] in self.resources:
                raise EvalError(f"moved from {_show(source)}: that resource still exists")
            if target[:2] not in self.resources:
                raise EvalError(f"moved to {_show(target)}: no such resource")
            if len(target) == 3 and target[2] not in self.instances(target[0], target[1]):
                raise EvalError(f"moved to {_show(target)}: for_each produces no such instance")
            result.append((source, target))
        return result

    def _address(self, node: Tree) -> Address:
        """`type.name` or `type.name[key]` as a tuple (the key evaluated)."""
        if node.data == "expr_term":
            return self._address(node.children[0])
        if node.data == "index_expr_term":
            base = self._address(node.children[0])
            (index,) = [c for c in node.children[1].children if isinstance(c, Tree)]
            return (*base, self.eval(index, {}))
        if node.data == "get_attr_expr_term":
            base = self._address(node.children[0])
            return (*base, _name(node.children[1].children[-1]))
        if node.data == "identifier":
            return (_name(node),)
        raise NotImplementedError(f"address {node.data}")

    def preconditions(self, rtype: str, name: str) -> dict[Any, list[tuple[Any, Any]]]:
        """{instance key: [(condition value, error message value)]} of the lifecycle preconditions."""
        body = self.resources.get((rtype, name))
        if body is None:
            raise EvalError(f"no resource {rtype}.{name}")
        attrs = _attributes(body)
        if "for_each" in attrs:
            scopes = {k: {"each": {"key": k, "value": v}} for k, v in iterate(self.eval(attrs["for_each"], {}))}
        elif "count" in attrs:
            scopes = {i: {"count": {"index": i}} for i in range(int(number(self.eval(attrs["count"], {}))))}
        else:
            scopes = {None: {}}
        result: dict[Any, list[tuple[Any, Any]]] = {}
        for key, scope in scopes.items():
            found = []
            for kind, _, lifecycle in _blocks(body):
                if kind != "lifecycle":
                    continue
                for inner_kind, _, block in _blocks(lifecycle):
                    if inner_kind == "precondition":
                        inner = _attributes(block)
                        found.append((self.eval(inner["condition"], scope), self.eval(inner["error_message"], scope)))
            result[key] = found
        return result

    def lifecycle(self, rtype: str, name: str) -> dict[str, Any]:
        """The plain attributes of a resource's lifecycle block (create_before_destroy, ...)."""
        for kind, _, block in _blocks(self.resources[(rtype, name)]):
            if kind == "lifecycle":
                return {k: self.eval(v, {}) for k, v in _attributes(block).items()}
        return {}

    def depends_on(self, kind: str, rtype: str, name: str) -> list[str]:
        """The depends_on of a resource (kind "resource") or data source (kind "data"), as addresses."""
        body = (self.resources if kind == "resource" else self.data)[(rtype, name)]
        expr = _attributes(body).get("depends_on")
        return [str(ref) for ref in self.eval(expr, {})] if expr is not None else []

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
                    for key, value in iterate(self.eval(attrs["for_each"], scope)):
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

    def eval(self, node: Any, scope: dict[str, Any]) -> Any:
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
            attr = _name(next(c for c in trees[1].children if isinstance(c, Tree)))
            return self._get_attr(base, attr)
        if kind == "index_expr_term":
            base = self.eval(trees[0], scope)
            index = trees[1]
            if index.data == "short_index":
                key = int(str(next(c for c in index.children if isinstance(c, Token) and c.type == "INT_LITERAL")))
            else:
                key = self.eval(
                    next(c for c in index.children if isinstance(c, Tree) and c.data != "new_line_or_comment"), scope
                )
            return self._getindex_value(base, key)
        if kind == "function_call":
            name = _name(trees[0])
            args_node = next((t for t in trees[1:] if t.data == "arguments"), None)
            args = (
                [c for c in args_node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]
                if args_node
                else []
            )
            expand = args_node is not None and any(
                isinstance(c, Token) and c.type == "ELLIPSIS" for c in args_node.children
            )
            return self._call(name, args, scope, expand)
        if kind == "conditional":
            cond = self.eval(trees[0], scope)
            if is_unknown(cond):
                return Ref(("unknown-condition",))
            if not isinstance(cond, bool):
                raise EvalError(f"condition is not a bool: {cond!r}")
            return self.eval(trees[1] if cond else trees[2], scope)
        if kind == "binary_op":
            left = self.eval(trees[0], scope)
            term = trees[1]
            operator = str(
                next(c for c in term.children if isinstance(c, Tree) and c.data == "binary_operator").children[0]
            )
            right_node = next(
                c
                for c in term.children
                if isinstance(c, Tree) and c.data not in ("binary_operator", "new_line_or_comment")
            )
            if operator == "&&" and left is False:
                return False
            if operator == "||" and left is True:
                return True
            return binary(operator, left, self.eval(right_node, scope))
        if kind == "unary_op":
            operator, operand = str(kids[0]), self.eval(trees[0], scope)
            return (not operand) if operator == "!" else -number(operand)
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
                expr = next(c for c in inner.children if isinstance(c, Tree))
                value = to_string(self.eval(expr, scope))
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
        return to_string(self.eval(inner[0], scope))

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

    def _getindex_value(self, base: Any, key: Any) -> Any:
        if isinstance(base, Ref):
            if is_unknown(key):
                return Ref(base.parts + (Key(str(key)),))
            offset = 1 if base.parts[0] == "data" else 0
            if len(base.parts) == offset + 2 and offset == 0:
                keys = self.instances(base.parts[0], base.parts[1])
                if key not in keys:
                    raise EvalError(f"{base} has no instance {key!r} (has {sorted(map(str, keys))})")
            return Ref(base.parts + (Key(key),))
        return index_value(base, key)

    def _for(self, kind: str, trees: list[Tree], kids: list[Any], scope: dict[str, Any]) -> Any:
        intro = trees[0]
        names = [_name(c) for c in intro.children if isinstance(c, Tree) and c.data == "identifier"]
        collection_node = next(
            c for c in intro.children if isinstance(c, Tree) and c.data not in ("identifier", "new_line_or_comment")
        )
        collection = self.eval(collection_node, scope)
        body = trees[1:]
        condition = body[-1] if body and body[-1].data == "for_cond" else None
        if condition is not None:
            body = body[:-1]
        if any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in kids):
            raise NotImplementedError("grouping for expressions (...)")
        out_list: list[Any] = []
        out_map: dict[Any, Any] = {}
        for key, value in iterate(collection):
            inner = dict(scope)
            if len(names) == 2:
                inner[names[0]], inner[names[1]] = key, value
            else:
                inner[names[0]] = value
            if condition is not None:
                cond_expr = next(
                    c for c in condition.children if isinstance(c, Tree) and c.data != "new_line_or_comment"
                )
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
            values = values[:-1] + [v for _, v in iterate(values[-1])]
        if any(is_unknown(v) for v in values) and name not in ("merge", "concat", "tolist", "toset", "compact"):
            return Ref((f"{name}(...)",))
        return self.functions[name](*values)

    def _path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else Path.cwd() / path

    def _functions(self) -> dict[str, Any]:
        return builtin_functions(lambda p: self._path(p))


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


Address = tuple[Any, ...]
"""(resource type, name) or (resource type, name, instance key)."""


def _show(address: Address) -> str:
    return ".".join(address[:2]) + (f"[{address[2]!r}]" if len(address) > 2 else "")


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
