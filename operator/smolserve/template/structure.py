"""Find the parts of a stock SmolLM3 chat template: header, message loop, generation prompt.

Hub revisions of the stock template differ in comments, whitespace control and how tools are
printed, but share one shape: a header that renders the system turn, then a top-level
``for message in messages`` loop, then a top-level ``if add_generation_prompt`` block. This
module checks that shape on jinja2's parse tree and locates each part in the source text with a
small tag scanner (the parse tree has line numbers but no offsets), so that the generator can
keep the header exactly as shipped and rewrite only the loop and the generation prompt.
A template of another shape is refused with the reason, never patched blindly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smolserve.errors import UsageError

_OPENERS = {"for", "if", "macro", "call", "filter", "with", "block", "generation", "autoescape"}
_BLOCK_SET = re.compile(r"^set\s+[\w.]+\s*$")  # `{% set x %}…{% endset %}` (no `=`)
MODE_VALUES = ("/think", "/no_think")


class StructureError(UsageError):
    """The stock template does not have the shape the generator knows how to rewrite."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"stock chat template not recognized: {reason}")


@dataclass(frozen=True)
class JinjaTag:
    """One ``{% %}``, ``{{ }}`` or ``{# #}`` tag: its span, markers and inner text."""

    kind: str  # "block" | "var" | "comment"
    start: int
    end: int
    left: str  # whitespace-control marker after the opening delimiter: "", "-" or "+"
    right: str  # marker before the closing delimiter
    inner: str  # text between the markers, stripped

    @property
    def keyword(self) -> str:
        return self.inner.split(None, 1)[0] if self.kind == "block" and self.inner else ""


@dataclass(frozen=True)
class Block:
    """A block statement from its opening tag to its matching end tag."""

    open: JinjaTag
    close: JinjaTag

    @property
    def body(self) -> tuple[int, int]:
        return self.open.end, self.close.start


@dataclass(frozen=True)
class StockStructure:
    source: str
    loop: Block  # for message in messages
    generation: Block  # if add_generation_prompt
    mode_variable: str  # the header's variable holding "/think" or "/no_think"
    loop_has_generation_tag: bool  # the loop marks assistant text with {% generation %}
    header_tags: tuple[JinjaTag, ...]  # tags before the loop
    header_reads: frozenset[str]  # names the header reads (template variables among them)

    @property
    def header(self) -> str:
        return self.source[: self.loop.open.start]


def _skip_string(source: str, i: int) -> int:
    quote = source[i]
    i += 1
    while i < len(source) and source[i] != quote:
        i += 2 if source[i] == "\\" else 1
    return i + 1


def scan_tags(source: str) -> list[JinjaTag]:
    """All tags of ``source`` in order; the content of ``{% raw %}`` blocks is skipped."""
    tags: list[JinjaTag] = []
    closers = {"{%": "%}", "{{": "}}", "{#": "#}"}
    kinds = {"{%": "block", "{{": "var", "{#": "comment"}
    i = 0
    while True:
        starts = [p for p in (source.find(o, i) for o in closers) if p >= 0]
        if not starts:
            return tags
        start = min(starts)
        opener = source[start : start + 2]
        j = start + 2
        left = source[j] if j < len(source) and source[j] in "-+" else ""
        j += len(left)
        closer = closers[opener]
        while True:
            if j >= len(source):
                raise StructureError(f"unterminated {opener} at offset {start}")
            if opener != "{#" and source[j] in "'\"":
                j = _skip_string(source, j)
            elif source.startswith(closer, j):
                break
            else:
                j += 1
        inner_end = j
        right = source[j - 1] if source[j - 1] in "-+" and j - 1 >= start + 2 + len(left) else ""
        if right:
            inner_end -= 1
        end = j + 2
        tag = JinjaTag(
            kinds[opener],
            start,
            end,
            left,
            right,
            source[start + 2 + len(left) : inner_end].strip(),
        )
        tags.append(tag)
        i = end
        if tag.keyword == "raw":
            close = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}").search(source, end)
            if close is None:
                raise StructureError("unterminated {% raw %} block")
            i = close.start()


def top_level_blocks(tags: list[JinjaTag]) -> list[Block]:
    """Blocks opened at nesting depth 0, matched with their end tags."""
    stack: list[JinjaTag] = []
    blocks: list[Block] = []
    for tag in tags:
        word = tag.keyword
        if word in _OPENERS or (word == "set" and _BLOCK_SET.match(tag.inner)):
            stack.append(tag)
        elif word.startswith("end"):
            if not stack or stack[-1].keyword != word[3:]:
                raise StructureError(f"unbalanced {{% {word} %}}")
            opened = stack.pop()
            if not stack:
                blocks.append(Block(opened, tag))
    if stack:
        raise StructureError(f"unclosed {{% {stack[-1].keyword} %}}")
    return blocks


def _is_mode_value(expr: object) -> bool:
    """A mode constant, or a conditional choosing between mode constants."""
    from jinja2 import nodes

    if isinstance(expr, nodes.Const):
        return expr.value in MODE_VALUES
    if isinstance(expr, nodes.CondExpr):
        return _is_mode_value(expr.expr1) and _is_mode_value(expr.expr2)
    return False


def _line(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


def analyse(source: str) -> StockStructure:
    """Check the stock template's shape and locate its parts; ``StructureError`` otherwise."""
    from jinja2 import TemplateSyntaxError, nodes
    from transformers.utils.chat_template_utils import _compile_jinja_template

    try:
        # transformers' own environment, so the parse matches what vLLM will render.
        tree = _compile_jinja_template(source).environment.parse(source)
    except TemplateSyntaxError as exc:
        raise StructureError(f"syntax error on line {exc.lineno}: {exc.message}") from None

    def is_message_loop(node: nodes.Node) -> bool:
        return (
            isinstance(node, nodes.For)
            and isinstance(node.target, nodes.Name)
            and node.target.name == "message"
            and isinstance(node.iter, nodes.Name)
            and node.iter.name == "messages"
        )

    def is_generation_block(node: nodes.Node) -> bool:
        return (
            isinstance(node, nodes.If)
            and isinstance(node.test, nodes.Name)
            and node.test.name == "add_generation_prompt"
        )

    def is_blank(node: nodes.Node) -> bool:
        return isinstance(node, nodes.Output) and all(
            isinstance(n, nodes.TemplateData) and not n.data.strip() for n in node.nodes
        )

    body = tree.body
    loops = [i for i, n in enumerate(body) if is_message_loop(n)]
    if len(loops) != 1:
        raise StructureError(
            f"expected one top-level 'for message in messages' loop, found {len(loops)}"
        )
    gens = [i for i, n in enumerate(body) if is_generation_block(n)]
    if len(gens) != 1 or gens[0] < loops[0]:
        raise StructureError(
            "expected one top-level 'if add_generation_prompt' block after the loop"
        )
    loop_i, gen_i = loops[0], gens[0]
    if not all(is_blank(n) for n in body[loop_i + 1 : gen_i] + body[gen_i + 1 :]):
        raise StructureError(
            "only whitespace may sit between the message loop, the generation-prompt block "
            "and the end of the template"
        )

    mode_names = {
        assign.target.name
        for n in body[:loop_i]
        for assign in [n, *n.find_all(nodes.Assign)]
        if isinstance(assign, nodes.Assign)
        and isinstance(assign.target, nodes.Name)
        and _is_mode_value(assign.node)
    }
    if len(mode_names) != 1:
        raise StructureError(
            "expected the header to set one reasoning-mode variable to '/think' or '/no_think', "
            f"found {sorted(mode_names) or 'none'}"
        )
    mode_variable = mode_names.pop()
    used = {n.name for n in body[gen_i].find_all(nodes.Name)}
    if mode_variable not in used:
        raise StructureError(
            "the generation-prompt block does not read the header's mode variable "
            f"{mode_variable!r}"
        )

    tags = scan_tags(source)
    blocks = top_level_blocks(tags)

    def find(lineno: int, keyword: str) -> Block:
        found = [
            b for b in blocks if b.open.keyword == keyword and _line(source, b.open.start) == lineno
        ]
        if len(found) != 1:
            raise StructureError(f"cannot locate the top-level '{keyword}' on line {lineno}")
        return found[0]

    loop = find(body[loop_i].lineno, "for")
    generation = find(body[gen_i].lineno, "if")
    loop_tags = [t for t in tags if loop.open.start <= t.start < loop.close.end]
    return StockStructure(
        source=source,
        loop=loop,
        generation=generation,
        mode_variable=mode_variable,
        loop_has_generation_tag=any(t.keyword == "generation" for t in loop_tags),
        header_tags=tuple(t for t in tags if t.end <= loop.open.start),
        header_reads=frozenset(
            name.name
            for node in body[:loop_i]
            for name in node.find_all(nodes.Name)
            if name.ctx == "load"
        ),
    )
