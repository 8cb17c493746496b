"""The API server's static cost estimate of a CEL rule, offline.

When a CRD is created, kube-apiserver type-checks every ``x-kubernetes-validations`` rule
against the schema and estimates its worst-case cost with cel-go's estimator: every
identifier and field selection costs 1, string work 0.1 per character, a regex match the
string's length times a quarter of the regex's, and a macro (``all``, ``exists``,
``exists_one``, ``map``, ``filter``) its body times the size of what it walks. Sizes come
from the schema (``maxLength`` times 4 bytes per character, ``maxItems``, ``maxProperties``, the
longest ``enum`` value) or, where the schema gives no bound, from what fits into one 3 MiB
request. This module re-implements that model (cel-go ``checker/cost.go`` and Kubernetes'
``apiserver/pkg/cel`` size estimator and library costs, as of Kubernetes 1.30-1.37) over
cel-python's parse tree, with a small type checker of its own.

Where Kubernetes versions differ, the older, more pessimistic estimate is used: 1.30-1.33
ignore ``maxLength`` on int-or-string fields, and ``metadata.name`` is taken as unbounded.
Functions outside CEL's standard library and the Kubernetes functions listed in
``_K8S_FUNCTIONS`` are refused as undeclared, as an API server refuses unknown functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

UNBOUNDED = 2**64 - 1
MAX_REQUEST_BYTES = 3 * 1024 * 1024
STRING_TRAVERSAL = 0.1  # cost per character of a string traversal
REGEX_LENGTH = 0.25  # cost per character of a regex
LIST_CREATE, MAP_CREATE = 10, 30
ACCUMULATOR = "@result"  # the accumulator variable of macro comprehensions
_RESERVED = {
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
    "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
    "void", "while",
}  # fmt: skip
_SCALARS = {"bool", "double", "duration", "int", "timestamp", "uint"}
_TYPE_NAMES = {
    "int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type",
    "dyn",
}  # fmt: skip


class CelCompileError(Exception):
    """What the API server's CEL compiler reports for a rule it cannot compile."""


# --- size and cost ranges (cel-go's SizeEstimate and CostEstimate) ------------------------------


def _saturate(x: int) -> int:
    return min(x, UNBOUNDED)


def _by_factor(x: int, factor: float) -> int:
    if x > 0 and factor > 0 and x > UNBOUNDED / factor:
        return UNBOUNDED
    product = math.ceil(float(x) * factor)
    return UNBOUNDED if product >= 2**64 else int(product)


@dataclass(frozen=True)
class Est:
    """A [lo, hi] range of sizes or costs that saturates at 2**64 - 1, like cel-go's."""

    lo: int
    hi: int

    def __add__(self, other: Est) -> Est:
        return Est(_saturate(self.lo + other.lo), _saturate(self.hi + other.hi))

    def __mul__(self, other: Est) -> Est:
        return Est(_saturate(self.lo * other.lo), _saturate(self.hi * other.hi))

    def times(self, factor: float) -> Est:
        return Est(_by_factor(self.lo, factor), _by_factor(self.hi, factor))

    def union(self, other: Est) -> Est:
        return Est(min(self.lo, other.lo), max(self.hi, other.hi))


FREE, ONE, UNKNOWN = Est(0, 0), Est(1, 1), Est(0, UNBOUNDED)


def fixed(n: int) -> Est:
    return Est(n, n)


# --- types: Kubernetes' DeclType of a schema node -----------------------------------------------


@dataclass
class Decl:
    """A CEL type; for schema nodes also the size bound and minimum serialized size."""

    kind: str  # string bytes int uint double bool null dyn list map object timestamp duration type
    max_elements: int = 0
    min_size: int = 1
    elem: Decl | None = None
    key: Decl | None = None
    fields: dict[str, Decl] = field(default_factory=dict)


DYN = Decl("dyn")


def _max_string(node: dict[str, Any]) -> int:
    if "maxLength" in node:
        return max(node["maxLength"], 0) * 4  # up to 4 bytes per character
    if node.get("enum"):
        return max((len(v) for v in node["enum"] if isinstance(v, str)), default=0)
    return MAX_REQUEST_BYTES - 2


def escape(name: str) -> str | None:
    """The CEL name of a property, or None where Kubernetes cannot expose it."""
    if name in _RESERVED:
        return f"__{name}__"
    if not name or not (name[0].isalpha() or name[0] == "_"):
        return None
    if any(not (c.isalnum() or c in "_.-/") for c in name):
        return None
    out = name.replace("__", "__underscores__")
    return out.replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")


def _with_type_and_object_meta(node: dict[str, Any]) -> dict[str, Any]:
    props = node.get("properties") or {}
    meta = props.get("metadata") or {}
    meta_props = meta.get("properties") or {}
    if (
        (props.get("kind") or {}).get("type") == "string"
        and (props.get("apiVersion") or {}).get("type") == "string"
        and meta.get("type") == "object"
        and (meta_props.get("name") or {}).get("type") == "string"
        and (meta_props.get("generateName") or {}).get("type") == "string"
    ):
        return node
    string = {"type": "string"}
    name_meta = {"type": "object", "properties": {"name": string, "generateName": string}}
    return {
        **node,
        "properties": {**props, "kind": string, "apiVersion": string, "metadata": name_meta},
    }


def schema_decl(node: dict[str, Any], is_resource_root: bool = False) -> Decl | None:
    """The type CEL rules see for a schema node (None where Kubernetes exposes none)."""
    if node.get("x-kubernetes-int-or-string"):
        # 1.30-1.33 ignore maxLength here; 1.34+ use 4 * maxLength.
        return Decl("dyn", max_elements=MAX_REQUEST_BYTES - 2, min_size=1)
    if is_resource_root:
        node = _with_type_and_object_meta(node)
    kind = node.get("type")
    if kind == "array":
        items = node.get("items")
        item = (
            schema_decl(items, bool(items.get("x-kubernetes-embedded-resource"))) if items else None
        )
        if item is None:
            return None
        if "maxItems" in node:
            bound = max(node["maxItems"], 0)
        else:
            bound = (MAX_REQUEST_BYTES - 2) // (item.min_size + 1)
        return Decl("list", max_elements=bound, min_size=2, elem=item)
    if kind == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            value = schema_decl(extra, bool(extra.get("x-kubernetes-embedded-resource")))
            if value is None:
                return None
            if "maxProperties" in node:
                bound = max(node["maxProperties"], 0)
            else:
                bound = (MAX_REQUEST_BYTES - 2) // (value.min_size + 6)
            key = Decl("string", max_elements=0, min_size=2)
            return Decl("map", max_elements=bound, min_size=2, elem=value, key=key)
        fields: dict[str, Decl] = {}
        min_size = 2
        required = set(node.get("required") or [])
        for name, prop in (node.get("properties") or {}).items():
            decl = schema_decl(prop, bool(prop.get("x-kubernetes-embedded-resource")))
            if decl is None:
                continue
            cel_name = escape(name)
            if cel_name is not None:
                fields[cel_name] = decl
            if name in required and "default" not in prop:
                min_size += len(name) + decl.min_size + 4
        return Decl("object", min_size=min_size, fields=fields)
    if kind == "string":
        fmt = node.get("format")
        if fmt == "byte":
            bound = max(node["maxLength"], 0) if "maxLength" in node else MAX_REQUEST_BYTES - 2
            return Decl("bytes", max_elements=bound, min_size=2)
        if fmt == "duration":
            return Decl("duration", max_elements=32, min_size=3)
        if fmt == "date":
            return Decl("timestamp", max_elements=12, min_size=12)
        if fmt == "date-time":
            return Decl("timestamp", max_elements=32, min_size=21)
        return Decl("string", max_elements=_max_string(node), min_size=2)
    if kind == "boolean":
        return Decl("bool", min_size=4)
    if kind == "number":
        return Decl("double", min_size=1)
    if kind == "integer":
        return Decl("int", min_size=1)
    return None


def max_cardinality(decl: Decl) -> int:
    """How often a node can occur in one request when its parents are unbounded."""
    return MAX_REQUEST_BYTES // (decl.min_size + 1)


# --- the rule's syntax tree, from cel-python's parser ---------------------------------------------


class Node:
    """An expression; nodes compare by identity, so they key the estimator's tables."""


@dataclass(eq=False)
class Lit(Node):
    value: Any
    kind: str


@dataclass(eq=False)
class Ident(Node):
    name: str


@dataclass(eq=False)
class Select(Node):
    operand: Node
    field: str
    test_only: bool = False  # has(operand.field)


@dataclass(eq=False)
class Call(Node):
    function: str
    args: list[Node]
    target: Node | None = None


@dataclass(eq=False)
class ListLit(Node):
    elements: list[Node]


@dataclass(eq=False)
class MapLit(Node):
    entries: list[tuple[Node, Node]]


@dataclass(eq=False)
class Comprehension(Node):
    """A macro, expanded as cel-go expands it."""

    var: str
    iter_range: Node
    accu_init: Node
    condition: Node
    step: Node
    result: Node


_BINARY = {
    "relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_",
    "relation_eq": "_==_", "relation_ne": "_!=_", "relation_in": "@in",
    "addition_add": "_+_", "addition_sub": "_-_",
    "multiplication_mul": "_*_", "multiplication_div": "_/_", "multiplication_mod": "_%_",
}  # fmt: skip


def parse(rule: str) -> Node:
    """The rule's syntax tree (macros expanded); CelCompileError for syntax errors."""
    import celpy

    try:
        tree = celpy.Environment().compile(rule)
    except celpy.CELParseError as err:
        raise CelCompileError(f"Syntax error: {' '.join(str(err).split())}") from err
    return _convert(tree)


def _kids(tree: Any) -> list[Any]:
    return [c for c in tree.children if c is not None]


_PASS_THROUGH = {"member", "primary", "paren_expr"}
_OPERATOR_LEVELS = {
    "expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary",
}  # fmt: skip


def _convert(tree: Any) -> Node:
    kids, kind = _kids(tree), tree.data
    if kind in _PASS_THROUGH or (kind in _OPERATOR_LEVELS and len(kids) == 1):
        return _convert(kids[0])
    if kind == "expr":
        return Call("_?_:_", [_convert(k) for k in kids])
    if kind in ("conditionalor", "conditionaland"):
        op = "_||_" if kind == "conditionalor" else "_&&_"
        return Call(op, [_convert(kids[0]), _convert(kids[1])])
    if kind in ("relation", "addition", "multiplication"):
        operator, rhs = kids
        (lhs,) = _kids(operator)
        return Call(_BINARY[operator.data], [_convert(lhs), _convert(rhs)])
    if kind == "unary":
        operator, operand = kids
        return Call("!_" if operator.data == "unary_not" else "-_", [_convert(operand)])
    if kind == "member_dot":
        return Select(_convert(kids[0]), str(kids[1]))
    if kind == "member_dot_arg":
        return _call(str(kids[1]), _exprlist(kids[2:]), _convert(kids[0]))
    if kind == "member_index":
        return Call("_[_]", [_convert(kids[0]), _convert(kids[1])])
    if kind == "ident_arg":
        return _call(str(kids[0]), _exprlist(kids[1:]), None)
    if kind == "ident":
        return Ident(str(kids[0]))
    if kind == "list_lit":
        return ListLit(_exprlist(kids))
    if kind == "map_lit":
        flat = _exprlist(kids, "mapinits")
        return MapLit(list(zip(flat[::2], flat[1::2], strict=True)))
    if kind == "literal":
        return _literal(kids[0])
    raise CelCompileError(f"unsupported syntax ({kind}) in this offline checker")


def _exprlist(kids: list[Any], name: str = "exprlist") -> list[Node]:
    if not kids:
        return []
    (listing,) = kids
    assert listing.data == name, listing.data
    return [_convert(c) for c in _kids(listing)]


def _literal(token: Any) -> Lit:
    from celpy.evaluation import celbytes, celstr

    kind = token.type
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return Lit(str(celstr(token)), "string")
    if kind == "BYTES_LIT":
        return Lit(bytes(celbytes(token)), "bytes")
    if kind == "INT_LIT":
        return Lit(int(token.value, 0), "int")
    if kind == "UINT_LIT":
        return Lit(int(token.value[:-1], 0), "uint")
    if kind == "FLOAT_LIT":
        return Lit(float(token.value), "double")
    if kind == "BOOL_LIT":
        return Lit(token.value == "true", "bool")
    return Lit(None, "null")


def _call(name: str, args: list[Node], target: Node | None) -> Node:
    if name == "has" and target is None:
        if len(args) != 1 or not isinstance(args[0], Select):
            raise CelCompileError("invalid argument to has() macro")
        return Select(args[0].operand, args[0].field, test_only=True)
    if target is not None and name in ("all", "exists", "exists_one", "map", "filter"):
        if args and isinstance(args[0], Ident):
            return _macro(name, target, args)
        raise CelCompileError(f"{name}(): the first argument must be a simple name")
    return Call(name, args, target)


def _accu() -> Ident:
    return Ident(ACCUMULATOR)


def _macro(name: str, target: Node, args: list[Node]) -> Comprehension:
    var = args[0].name  # type: ignore[attr-defined]
    if len(args) not in ((2, 3) if name == "map" else (2,)):
        raise CelCompileError(f"{name}(): wrong number of arguments")
    true = Lit(True, "bool")
    if name == "all":
        cond = Call("@not_strictly_false", [_accu()])
        return Comprehension(var, target, true, cond, Call("_&&_", [_accu(), args[1]]), _accu())
    if name == "exists":
        cond = Call("@not_strictly_false", [Call("!_", [_accu()])])
        return Comprehension(
            var, target, Lit(False, "bool"), cond, Call("_||_", [_accu(), args[1]]), _accu()
        )
    if name == "exists_one":
        plus_one = Call("_+_", [_accu(), Lit(1, "int")])
        step = Call("_?_:_", [args[1], plus_one, _accu()])
        return Comprehension(
            var, target, Lit(0, "int"), true, step, Call("_==_", [_accu(), Lit(1, "int")])
        )
    if name == "filter":
        append = Call("_+_", [_accu(), ListLit([Ident(var)])])
        step = Call("_?_:_", [args[1], append, _accu()])
        return Comprehension(var, target, ListLit([]), true, step, _accu())
    step = Call("_+_", [_accu(), ListLit([args[-1]])])
    if len(args) == 3:
        step = Call("_?_:_", [args[1], step, _accu()])
    return Comprehension(var, target, ListLit([]), true, step, _accu())


def uses_variable(node: Node, name: str) -> bool:
    """Whether an expression reads the variable ``name`` (e.g. oldSelf)."""
    if isinstance(node, Ident):
        return node.name == name
    if isinstance(node, Select):
        return uses_variable(node.operand, name)
    if isinstance(node, Call):
        parts = [*node.args, *([node.target] if node.target else [])]
        return any(uses_variable(p, name) for p in parts)
    if isinstance(node, ListLit):
        return any(uses_variable(e, name) for e in node.elements)
    if isinstance(node, MapLit):
        return any(uses_variable(k, name) or uses_variable(v, name) for k, v in node.entries)
    if isinstance(node, Comprehension):
        parts = (node.iter_range, node.accu_init, node.condition, node.step, node.result)
        return any(uses_variable(p, name) for p in parts)
    return False


# --- the estimator ---------------------------------------------------------------------------


@dataclass
class _Entry:
    """Sizes of a list's or map's entries, where CEL knows them (literals, concatenations)."""

    container: str  # list or map
    key: Est
    val: Est

    def union(self, other: _Entry | None) -> _Entry | None:
        if other is None:
            return None
        return _Entry(self.container, self.key.union(other.key), self.val.union(other.val))


@dataclass
class _Var:
    path: list[str]
    size: Est | None
    entry: _Entry | None
    type: Decl


@dataclass
class Estimate:
    cost: Est
    type: Decl


def estimate(rule: str | Node, decl: Decl) -> Estimate:
    """Type-check ``rule`` with ``self`` and ``oldSelf`` of type ``decl``; its cost range."""
    tree = parse(rule) if isinstance(rule, str) else rule
    estimator = _Estimator(decl)
    cost = estimator.cost(tree)
    return Estimate(cost, estimator.types[tree])


class _Estimator:
    """cel-go's coster, fed by Kubernetes' size estimator (sizes from the schema)."""

    def __init__(self, root: Decl) -> None:
        self.root = root
        self.paths: dict[Node, list[str]] = {}
        self.sizes: dict[Node, Est] = {}
        self.entries: dict[Node, _Entry] = {}
        self.types: dict[Node, Decl] = {}
        self.scopes: dict[str, list[_Var]] = {}

    # variables

    def _push(self, name: str, var: _Var) -> None:
        self.scopes.setdefault(name, []).append(var)

    def _pop(self, name: str) -> None:
        self.scopes[name].pop()

    def _var(self, name: str) -> _Var | None:
        stack = self.scopes.get(name)
        return stack[-1] if stack else None

    # paths and sizes

    def path(self, e: Node) -> list[str]:
        if isinstance(e, Ident) and (var := self._var(e.name)) is not None:
            return list(var.path)
        return list(self.paths.get(e, []))

    def _schema_size(self, path: list[str]) -> Est | None:
        """Kubernetes' sizeEstimator: follow the path from the rule's node; its bound."""
        if not path:
            return None
        node: Decl | None = self.root
        for name in path[1:]:  # the first element is the variable, whatever it is
            if name in ("@items", "@values"):
                node = node.elem
            elif name == "@keys":
                node = node.key
            else:
                node = node.fields.get(name)
            if node is None:
                return None
        return Est(0, node.max_elements)

    def size(self, e: Node) -> Est | None:
        """cel-go's computeSize."""
        if e in self.sizes:
            return self.sizes[e]
        if isinstance(e, Lit):
            if e.kind in ("string", "bytes"):
                return fixed(len(e.value))
            return ONE
        if isinstance(e, ListLit):
            return fixed(len(e.elements))
        if isinstance(e, MapLit):
            return fixed(len(e.entries))
        if (schema_size := self._schema_size(self.path(e))) is not None:
            self.sizes[e] = schema_size
            return schema_size
        if self.types[e].kind in _SCALARS:
            return ONE
        if isinstance(e, Ident) and (var := self._var(e.name)) is not None:
            return var.size
        return None

    def size_or_unknown(self, e: Node) -> Est:
        size = self.size(e)
        return UNKNOWN if size is None else size

    def library_size(self, e: Node) -> Est:
        """Kubernetes' library estimator: computed size, else the schema's (no accumulators)."""
        size = self.size(e)
        if size is not None:
            return size
        path = self.path(e)
        if path and path[0] == ACCUMULATOR:
            path = []
        schema_size = self._schema_size(path)
        return UNKNOWN if schema_size is None else schema_size

    def item_size(self, e: Node) -> Est:
        """Kubernetes' library estimator on the items of a list expression."""
        path = self.path(e)
        if not path or path[0] == ACCUMULATOR:
            return UNKNOWN
        size = self._schema_size([*path, "@items"])
        return UNKNOWN if size is None else size

    def entry(self, e: Node) -> _Entry | None:
        if e in self.entries:
            return self.entries[e]
        if isinstance(e, Ident) and (var := self._var(e.name)) is not None:
            return var.entry
        return None

    # expressions

    def cost(self, e: Node) -> Est:
        if isinstance(e, Lit):
            self.types[e] = Decl(e.kind)
            return FREE
        if isinstance(e, Ident):
            return self._ident(e)
        if isinstance(e, Select):
            return self._select(e)
        if isinstance(e, Call):
            return self._call(e)
        if isinstance(e, ListLit):
            return self._list(e)
        if isinstance(e, MapLit):
            return self._map(e)
        assert isinstance(e, Comprehension)
        return self._comprehension(e)

    def _ident(self, e: Ident) -> Est:
        var = self._var(e.name)
        if var is not None:
            self.types[e] = var.type
        elif e.name in ("self", "oldSelf"):
            self.types[e] = self.root
            self.paths[e] = [e.name]
        elif e.name in _TYPE_NAMES:
            self.types[e] = Decl("type")
            self.paths[e] = [e.name]
        else:
            raise CelCompileError(f"undeclared reference to '{e.name}'")
        return ONE

    def _select(self, e: Select) -> Est:
        operand_cost = self.cost(e.operand)
        operand = self.types[e.operand]
        if operand.kind == "object":
            if e.field not in operand.fields:
                raise CelCompileError(f"undefined field '{e.field}'")
            selected = operand.fields[e.field]
        elif operand.kind == "map":
            selected = operand.elem or DYN
        elif operand.kind == "dyn":
            selected = DYN
        else:
            raise CelCompileError(f"type '{operand.kind}' does not support field selection")
        if e.test_only:
            self.types[e] = Decl("bool")
            return operand_cost  # has() costs nothing beyond its operand in Kubernetes
        self.types[e] = selected
        self.paths[e] = [*self.path(e.operand), e.field]
        return operand_cost + (ONE if operand.kind in ("object", "map") else FREE)

    def _list(self, e: ListLit) -> Est:
        total = FREE
        item = Est(0 if not e.elements else UNBOUNDED, 0)
        for element in e.elements:
            total += self.cost(element)
            item = item.union(self.size_or_unknown(element))
        self.entries[e] = _Entry("list", ONE, item)
        types = {self.types[x].kind for x in e.elements}
        elem = self.types[e.elements[0]] if len(types) == 1 else DYN
        self.types[e] = Decl("list", elem=elem)
        return total + fixed(LIST_CREATE)

    def _map(self, e: MapLit) -> Est:
        total = FREE
        empty = 0 if not e.entries else UNBOUNDED
        key, val = Est(empty, 0), Est(empty, 0)
        for k, v in e.entries:
            total += self.cost(k) + self.cost(v)
            key, val = key.union(self.size_or_unknown(k)), val.union(self.size_or_unknown(v))
        self.entries[e] = _Entry("map", key, val)
        self.types[e] = Decl("map", key=Decl("string"), elem=DYN)
        return total + fixed(MAP_CREATE)

    def _comprehension(self, e: Comprehension) -> Est:
        total = self.cost(e.iter_range) + self.cost(e.accu_init)
        init = e.accu_init
        self._push(
            ACCUMULATOR,
            _Var(self.path(init), self.size(init), self.entry(init), self.types[init]),
        )
        over = self.types[e.iter_range]
        entry = self.entry(e.iter_range)
        container = entry.container if entry else over.kind
        if container not in ("list", "map", "dyn"):
            raise CelCompileError(
                f"expression of type '{over.kind}' cannot be the range of a comprehension"
            )
        if container == "list":
            size = entry.val if entry else None
            var_type, step_name = over.elem or DYN, "@items"
        else:
            size = entry.key if entry else None
            var_type, step_name = over.key or DYN, "@keys"
        self._push(e.var, _Var([*self.path(e.iter_range), step_name], size, None, var_type))
        loop = self.cost(e.condition)
        step = self.cost(e.step)
        self._pop(e.var)
        total += self.cost(e.result)
        self.types[e] = self.types[e.result]
        self._pop(ACCUMULATOR)
        count = self.size_or_unknown(e.iter_range)
        total += count * (step + loop)
        if isinstance(init, Lit):
            if (init_size := self.size(init)) is not None:
                self.sizes[e] = init_size
        else:
            self.sizes[e] = count
            if (step_entry := self.entry(e.step)) is not None:
                self.entries[e] = step_entry
        return total

    def _call(self, e: Call) -> Est:
        if e.function == "dyn" and e.target is None and len(e.args) == 1:
            arg_cost = self.cost(e.args[0])
            if (size := self.size(e.args[0])) is not None:
                self.sizes[e] = size
            if (entry := self.entry(e.args[0])) is not None:
                self.entries[e] = entry
            self.types[e] = DYN
            return ONE + arg_cost
        arg_costs = [self.cost(a) for a in e.args]
        total = FREE
        if e.target is not None:
            total += self.cost(e.target)
        overloads, result = _resolve(
            e.function,
            self.types[e.target] if e.target is not None else None,
            [self.types[a] for a in e.args],
        )
        self.types[e] = result
        cost = Est(UNBOUNDED, 0)
        result_size: Est | None = None
        for overload in overloads:
            call_cost, call_size = self._overload_cost(e, overload, arg_costs)
            cost = cost.union(call_cost)
            if call_size is not None:
                result_size = call_size if result_size is None else result_size.union(call_size)
            if overload in ("index_list", "index_map"):
                entry = self.entry(e.args[0])
                result_size = entry.val if entry else None
                step = "@items" if overload == "index_list" else "@values"
                self.paths[e] = [*self.path(e.args[0]), step]
            if result_size is None:
                result_size = self.size(e)
        if result_size is not None:
            self.sizes[e] = result_size
        return total + cost

    def _overload_cost(
        self, e: Call, overload: str, arg_costs: list[Est]
    ) -> tuple[Est, Est | None]:
        """cel-go's functionCost, after Kubernetes' EstimateCallCost; (cost, result size)."""
        args, target = e.args, e.target
        arg_sum = FREE
        for c in arg_costs:
            arg_sum += c
        library = _K8S_FUNCTIONS.get(e.function)
        if library is not None and (estimate := library(self, e)) is not None:
            call_cost, call_size = estimate
            return call_cost + arg_sum, call_size
        if overload == "string_to_bytes":
            size = self.size_or_unknown(args[0])
            return size.times(STRING_TRAVERSAL) + arg_sum, Est(size.lo, _saturate(size.hi * 4))
        if overload == "bytes_to_string":
            size = self.size_or_unknown(args[0])
            return size.times(STRING_TRAVERSAL) + arg_sum, Est(size.lo // 4, size.hi)
        if overload in ("starts_with_string", "ends_with_string"):
            return self.size_or_unknown(args[0]).times(STRING_TRAVERSAL) + arg_sum, None
        if overload == "in_list":
            return self.size_or_unknown(args[1]).times(1) + arg_sum, None
        if overload == "matches_string" and target is not None:
            text = (self.size_or_unknown(target) + ONE).times(STRING_TRAVERSAL)
            regex = self.size_or_unknown(args[0]).times(REGEX_LENGTH)
            return text * regex + arg_sum, None
        if overload == "contains_string" and target is not None:
            text = self.size_or_unknown(target).times(STRING_TRAVERSAL)
            sub = self.size_or_unknown(args[0]).times(STRING_TRAVERSAL)
            return text * sub + arg_sum, None
        if overload in ("logical_and", "logical_or"):
            lhs, rhs = arg_costs
            return Est(lhs.lo, (lhs + rhs).hi), None
        if overload == "conditional":
            size = self.size_or_unknown(args[1]).union(self.size_or_unknown(args[2]))
            entry = self.entry(args[1])
            if entry is not None and (merged := entry.union(self.entry(args[2]))) is not None:
                self.entries[e] = merged
            return arg_costs[0] + arg_costs[1].union(arg_costs[2]), size
        if overload in ("add_string", "add_bytes", "add_list"):
            size = self.size_or_unknown(args[0]) + self.size_or_unknown(args[1])
            entry = self.entry(args[0])
            if entry is not None and (merged := entry.union(self.entry(args[1]))) is not None:
                self.entries[e] = merged
            if overload == "add_list":
                return ONE + arg_sum, size
            return size.times(STRING_TRAVERSAL) + arg_sum, size
        if overload in _SIZED_COMPARISONS:
            smallest = min(self.size_or_unknown(args[0]).hi, self.size_or_unknown(args[1]).hi)
            return Est(1 if smallest > 0 else 0, smallest).times(STRING_TRAVERSAL) + arg_sum, None
        return ONE + arg_sum, None


_SIZED_COMPARISONS = {
    "equals", "not_equals",
    "less_string", "less_equals_string", "greater_string", "greater_equals_string",
    "less_bytes", "less_equals_bytes", "greater_bytes", "greater_equals_bytes",
}  # fmt: skip
_COMPARISON_NAMES = {
    "_<_": "less",
    "_<=_": "less_equals",
    "_>_": "greater",
    "_>=_": "greater_equals",
}
_NUMERIC = {"int", "uint", "double"}
_ADDITIONS = [
    ("string", "string", "add_string"), ("bytes", "bytes", "add_bytes"),
    ("list", "list", "add_list"), ("int", "int", "add_int64"), ("uint", "uint", "add_uint64"),
    ("double", "double", "add_double"), ("duration", "duration", "add_duration_duration"),
    ("timestamp", "duration", "add_timestamp_duration"),
    ("duration", "timestamp", "add_duration_timestamp"),
]  # fmt: skip


def _compatible(actual: Decl | None, *kinds: str) -> bool:
    return actual is not None and (actual.kind == "dyn" or actual.kind in kinds)


def _resolve(function: str, target: Decl | None, args: list[Decl]) -> tuple[list[str], Decl]:
    """The overloads a call may bind to (all that fit where an operand is dyn) and its type."""
    bool_ = Decl("bool")
    kinds = [a.kind for a in args]

    def fail() -> CelCompileError:
        shown = ", ".join(kinds)
        return CelCompileError(
            f"found no matching overload for '{function}' applied to '({shown})'"
        )

    if function in ("_&&_", "_||_"):
        if not all(_compatible(a, "bool") for a in args):
            raise fail()
        return ["logical_and" if function == "_&&_" else "logical_or"], bool_
    if function in ("!_", "@not_strictly_false"):
        if not _compatible(args[0], "bool"):
            raise fail()
        return ["logical_not"], bool_
    if function == "_?_:_":
        if not _compatible(args[0], "bool"):
            raise fail()
        if args[1].kind == args[2].kind or args[2].kind == "null":
            return ["conditional"], args[1]
        return ["conditional"], args[2] if args[1].kind == "null" else DYN
    if function in ("_==_", "_!=_"):
        primitive = {"string", "bytes", "bool", "int", "uint", "double"}
        if kinds[0] in primitive and kinds[1] in primitive and kinds[0] != kinds[1]:
            raise fail()
        return ["equals" if function == "_==_" else "not_equals"], bool_
    if function in _COMPARISON_NAMES:
        name, found = _COMPARISON_NAMES[function], []
        if _compatible(args[0], "string") and _compatible(args[1], "string"):
            found.append(f"{name}_string")
        if _compatible(args[0], "bytes") and _compatible(args[1], "bytes"):
            found.append(f"{name}_bytes")
        for family in (_NUMERIC, {"bool"}, {"timestamp"}, {"duration"}):
            if _compatible(args[0], *family) and _compatible(args[1], *family):
                found.append(f"{name}_{'_'.join(sorted(family))}")
        if not found:
            raise fail()
        return found, bool_
    if function == "@in":
        found = [o for o, k in (("in_list", "list"), ("in_map", "map")) if _compatible(args[1], k)]
        if not found:
            raise fail()
        return found, bool_
    if function == "_+_":
        found = [
            o
            for lhs, rhs, o in _ADDITIONS
            if _compatible(args[0], lhs) and _compatible(args[1], rhs)
        ]
        if not found:
            raise fail()
        known = sorted((a for a in args if a.kind != "dyn"), key=lambda a: a.kind != "timestamp")
        return found, known[0] if known else DYN
    if function in ("_-_", "_*_", "_/_", "_%_", "-_"):
        if not all(_compatible(a, *_NUMERIC, "timestamp", "duration") for a in args):
            raise fail()
        known = [a for a in args if a.kind != "dyn"]
        return ["arithmetic"], known[0] if known else DYN
    if function == "_[_]":
        container = args[0]
        found = [
            o
            for o, k in (("index_list", "list"), ("index_map", "map"))
            if _compatible(container, k)
        ]
        if not found:
            raise fail()
        return found, container.elem or DYN
    return _resolve_function(function, target, args)


_CONVERSIONS = {"int": "int", "uint": "uint", "double": "double", "bool": "bool", "type": "type"}
_TIME_GETTERS = {
    "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
    "getHours", "getMinutes", "getSeconds", "getMilliseconds",
}  # fmt: skip


def _resolve_function(
    function: str, target: Decl | None, args: list[Decl]
) -> tuple[list[str], Decl]:
    subject = target if target is not None else (args[0] if args else None)
    bool_, int_, string = Decl("bool"), Decl("int"), Decl("string")
    if function == "size":
        if not _compatible(subject, "string", "bytes", "list", "map"):
            shown = subject.kind if subject else ""
            raise CelCompileError(f"found no matching overload for 'size' applied to '{shown}'")
        return ["size"], int_
    if function in ("contains", "startsWith", "endsWith", "matches"):
        texts = [t for t in (target, *args) if t is not None]
        if len(texts) != 2 or not all(_compatible(t, "string") for t in texts):
            raise CelCompileError(f"found no matching overload for '{function}'")
        if function == "matches" and target is None:
            return ["matches"], bool_  # the global form has no cost estimate of its own
        snake = {"startsWith": "starts_with", "endsWith": "ends_with"}.get(function, function)
        return [f"{snake}_string"], bool_
    if function == "string" and target is None and len(args) == 1:
        sources = ("string", "bool", "bytes", "double", "duration", "int", "timestamp", "uint")
        found = [f"{k}_to_string" for k in sources if _compatible(args[0], k)]
        if not found:
            raise CelCompileError(
                f"found no matching overload for 'string' applied to '({args[0].kind})'"
            )
        return found, string
    if function == "bytes" and target is None and len(args) == 1:
        found = [f"{k}_to_bytes" for k in ("string", "bytes") if _compatible(args[0], k)]
        return found or ["bytes"], Decl("bytes")
    if function in _CONVERSIONS and target is None:
        return [function], Decl(_CONVERSIONS[function])
    if function in ("timestamp", "duration") and target is None:
        return [function], Decl(function)
    if function in _TIME_GETTERS and target is not None:
        return [function], int_
    if function in _K8S_RESULTS:
        return [function], _k8s_result(function, target)
    raise CelCompileError(
        f"undeclared reference to '{function}' (not known to this offline checker)"
    )


# --- Kubernetes' library functions (apiserver/pkg/cel/library/cost.go) -------------------------


_K8S_RESULTS = {
    "lowerAscii": "string", "upperAscii": "string", "trim": "string", "substring": "string",
    "replace": "string", "join": "string", "find": "string", "split": "strings",
    "findAll": "strings", "isSorted": "bool", "sum": "elem", "min": "elem", "max": "elem",
    "indexOf": "int", "lastIndexOf": "int", "quantity": "dyn", "isQuantity": "bool",
    "semver": "dyn", "isSemver": "bool", "url": "dyn", "isURL": "bool", "ip": "dyn",
    "cidr": "dyn", "isIP": "bool", "isCIDR": "bool",
}  # fmt: skip


def _k8s_result(function: str, target: Decl | None) -> Decl:
    kind = _K8S_RESULTS[function]
    if kind == "strings":
        return Decl("list", elem=Decl("string"))
    if kind == "elem":
        return (target.elem if target is not None else None) or DYN
    return Decl(kind)


def _traversal(est: _Estimator, e: Call) -> tuple[Est, Est | None] | None:
    if e.target is None:
        return None
    size = est.library_size(e.target)
    return size.times(STRING_TRAVERSAL), size


def _list_traversal(est: _Estimator, e: Call) -> tuple[Est, Est | None] | None:
    if e.target is None:
        return None
    target_type = est.types[e.target]
    count = est.library_size(e.target)
    if target_type.kind == "list":
        per_element = ONE
        element = target_type.elem or DYN
        if element.kind in ("string", "bytes"):
            per_element = per_element + est.item_size(e.target).times(STRING_TRAVERSAL)
        return count * per_element, None
    return count.times(STRING_TRAVERSAL), None


def _replace(est: _Estimator, e: Call) -> tuple[Est, Est | None] | None:
    if e.target is None or len(e.args) < 2:
        return None
    size = est.library_size(e.target)
    old, new = est.library_size(e.args[0]), est.library_size(e.args[1])
    if old.lo == 0:
        count_hi, kept_hi = (size.hi + 1 if size.hi < UNBOUNDED else size.hi), size.hi
    elif new.hi <= old.lo:
        count_hi, kept_hi = 0, size.hi
    else:
        count_hi, kept_hi = math.ceil(size.hi / old.lo), 0
    if old.hi == 0:
        count_lo, kept_lo = (size.lo + 1 if size.lo < UNBOUNDED else size.lo), size.lo
    elif old.hi <= new.lo:
        count_lo, kept_lo = 0, size.lo
    else:
        count_lo, kept_lo = math.ceil(size.lo / old.hi), 0
    result = Est(count_lo, count_hi) * new + Est(kept_lo, kept_hi)
    return size.times(2 * STRING_TRAVERSAL), result


def _split(est: _Estimator, e: Call) -> tuple[Est, Est | None] | None:
    if e.target is None:
        return None
    size = est.library_size(e.target)
    limit = size.hi
    if len(e.args) > 1 and isinstance(e.args[1], Lit) and e.args[1].kind == "int":
        limit = e.args[1].value
    return size.times(2 * STRING_TRAVERSAL), Est(0, limit)


def _join(est: _Estimator, e: Call) -> tuple[Est, Est | None] | None:
    if e.target is None:
        return None
    count = est.library_size(e.target)
    size = count * est.item_size(e.target)
    if e.args:
        separators = Est(max(count.lo - 1, 0), max(count.hi - 1, 0))
        size = size + est.library_size(e.args[0]) * separators
    return size.times(STRING_TRAVERSAL), size


def _find(est: _Estimator, e: Call) -> tuple[Est, Est | None] | None:
    if e.target is None or not e.args:
        return None
    size = est.library_size(e.target)
    text = (size + ONE).times(STRING_TRAVERSAL)
    regex = est.library_size(e.args[0]).times(REGEX_LENGTH)
    return text * regex, Est(0, size.hi)


def _parse_argument(est: _Estimator, e: Call) -> tuple[Est, Est | None] | None:
    if not e.args:
        return None
    return est.library_size(e.args[0]).times(STRING_TRAVERSAL), None


_K8S_FUNCTIONS = {
    "lowerAscii": _traversal, "upperAscii": _traversal, "trim": _traversal,
    "substring": _traversal, "replace": _replace, "split": _split, "join": _join,
    "find": _find, "findAll": _find,
    "isSorted": _list_traversal, "sum": _list_traversal, "min": _list_traversal,
    "max": _list_traversal, "indexOf": _list_traversal, "lastIndexOf": _list_traversal,
    "quantity": _parse_argument, "isQuantity": _parse_argument, "semver": _parse_argument,
    "isSemver": _parse_argument, "url": _parse_argument, "ip": _parse_argument,
    "cidr": _parse_argument, "isIP": _parse_argument, "isCIDR": _parse_argument,
}  # fmt: skip
