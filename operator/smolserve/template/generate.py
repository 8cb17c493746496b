"""Generate the chat template a SmolServe serves: ``fixed``, ``seed`` or ``stock``.

``fixed`` and ``seed`` are derived from the tokenizer's own stock template (see
``structure.py``): the header is kept as shipped; inside the message loop two branches are put
in front of the stock ones, for tool results and for assistant turns with tool calls, and every
other message still goes through the stock code; the generation-prompt block is rewritten.
So a conversation without tool history renders byte-identical to the stock template, except
the ``/think`` generation prompt (``fixed`` prefills ``<think>\\n`` there) and two repairs of
the header's output that leave its code alone: closing a system turn the header left open
(``close_system_turn``) and handing ``tools`` to a header that reads only ``xml_tools``.

- ``fixed``: tool results wrapped in tool-response tags inside one user turn per run of
  consecutive results; assistant ``tool_calls`` rendered after the content, one tool-call block
  each, arguments from a dict (``tojson``) or a JSON string (verbatim); ``/think`` prompt opens
  the think tag; ``/no_think`` keeps the stock prompt (the empty, closed think block).
- ``seed``: the user's original notes literally: the same tool fixes, ``/think`` opens the tag,
  ``/no_think`` gets a bare assistant header (a known regression with vLLM's parsers).
- ``stock``: the tokenizer's template unchanged.

Every tag is written from the tokenizer's token map, never from a literal.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from string import Template
from typing import Any, Literal, get_args

from smolserve.errors import SmolserveError, UsageError
from smolserve.template.render import FROZEN_DATE, render_prompt
from smolserve.template.structure import JinjaTag, StockStructure, StructureError, analyse
from smolserve.template.tokens import TokenMap, read_token_map

Variant = Literal["fixed", "seed", "stock"]
VARIANTS: tuple[str, ...] = get_args(Variant)

# Placed right after the stock loop's `for` tag; the stock loop body follows in the `else`.
_LOOP_PREFIX = r"""
{%- if message.role == "tool" -%}
  {%- if loop.first or loop.previtem.role != "tool" -%}
    {{- ${im_start} ~ "user\n" -}}
  {%- else -%}
    {{- "\n" -}}
  {%- endif -%}
  {{- ${tool_response_open} ~ "\n"
      ~ (message.content if message.content is string else "")
      ~ "\n" ~ ${tool_response_close} -}}
  {%- if loop.last or loop.nextitem.role != "tool" -%}
    {{- ${im_end} ~ "\n" -}}
  {%- endif -%}
{%- elif message.role == "assistant" and message.tool_calls -%}
  ${generation_open}
  {{- ${im_start} ~ "assistant\n" -}}
  {%- if ${mode} != "/think" -%}
    {{- ${think_open} ~ "\n\n" ~ ${think_close} ~ "\n" -}}
  {%- endif -%}
  {%- set smolserve_content = message.content if message.content is string else "" -%}
  {{- smolserve_content -}}
  {%- for tool_call in message.tool_calls -%}
    {%- set call = tool_call.function if tool_call.function is defined else tool_call -%}
    {%- set arguments = call.arguments
        if call.arguments is defined and call.arguments is not none else {} -%}
    {%- if not loop.first or smolserve_content -%}
      {{- "\n" -}}
    {%- endif -%}
    {{- ${tool_call_open} ~ "\n"
        ~ '{"name": ' ~ (call.name | tojson)
        ~ ', "arguments": ' ~ (arguments if arguments is string else (arguments | tojson))
        ~ "}\n" ~ ${tool_call_close} -}}
  {%- endfor -%}
  {{- ${im_end} ~ "\n" -}}
  ${generation_close}
{%- else ${loop_right}%}
""".strip()

# fixed: prefill the think tag in /think; every other case keeps the stock block (the else).
_FIXED_GENERATION_PREFIX = r"""
{${left} if add_generation_prompt and ${mode} == "/think" -%}
  {{- ${im_start} ~ "assistant\n" ~ ${think_open} ~ "\n" -}}
{%- else -%}
""".strip()

_SEED_GENERATION = r"""
{${left} if add_generation_prompt -%}
  {{- ${im_start} ~ "assistant\n" -}}
  {%- if ${mode} == "/think" -%}
    {{- ${think_open} ~ "\n" -}}
  {%- endif -%}
{%- endif ${right}%}
""".strip()

_CLOSE_SYSTEM_TURN = r"""
{${left} if not smolserve_state.system_closed -%}
  {{- ${im_end} ~ "\n" -}}
{%- endif -%}
""".strip()

# Some revisions print only `xml_tools`; vLLM passes the request's tools as `tools`.
_TOOLS_AS_XML_TOOLS = "{%+ if tools and not xml_tools +%}{%+ set xml_tools = tools +%}{%+ endif +%}"

# Put right after a tag that writes the turn-end tag. Its right marker mirrors that tag's: "-"
# keeps stripping the whitespace that follows, "+" keeps trim_blocks from eating a newline.
_MARK_SYSTEM_CLOSED = "{%+ set smolserve_state.system_closed = true ${right}%}"


@dataclass(frozen=True)
class GeneratedTemplate:
    """A generated chat template and what it was made from."""

    text: str
    variant: Variant
    token_map: TokenMap
    close_system_turn: bool
    stock_sha256: str
    notes: tuple[str, ...] = field(default=())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def summary(self, *, source: str | None = None, revision: str | None = None) -> dict[str, Any]:
        """The JSON-able record printed by ``smolserve template generate``."""
        return {
            "sha256": self.sha256,
            "variant": self.variant,
            "close_system_turn": self.close_system_turn,
            "source": source,
            "revision": revision,
            "stock_sha256": self.stock_sha256,
            "token_map": self.token_map.as_dict(),
            "notes": list(self.notes),
            "versions": library_versions(),
        }


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("smolserve", "transformers", "tokenizers", "jinja2"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _lit(text: str) -> str:
    """A Jinja string literal for ``text`` (JSON escapes are valid Jinja escapes)."""
    return json.dumps(text, ensure_ascii=False)


def _fill(snippet: str, token_map: TokenMap, **extra: str) -> str:
    values = {role: _lit(tag.text) for role, tag in token_map.tags().items()}
    return Template(snippet).substitute(values, **extra)


def _check_tags_in_header(structure: StockStructure, token_map: TokenMap) -> None:
    for role in ("im_start", "im_end"):
        if getattr(token_map, role).text not in structure.source:
            raise StructureError(
                f"the template never writes the tokenizer's {role} tag "
                f"{getattr(token_map, role).text!r}: tokenizer and template disagree"
            )


def _system_turn_markers(structure: StockStructure, token_map: TokenMap) -> list[JinjaTag]:
    """The header's tags that write the turn-end tag."""
    im_end = token_map.im_end.text
    marks = []
    previous_end = 0
    for tag in structure.header_tags:
        if im_end in structure.source[previous_end : tag.start]:
            raise StructureError(
                f"the header writes {im_end!r} as plain text; cannot track whether the "
                "system turn is closed (use --no-close-system-turn)"
            )
        if tag.kind == "var" and im_end in tag.inner:
            marks.append(tag)
        previous_end = tag.end
    if im_end in structure.header[previous_end:]:
        raise StructureError(f"the header writes {im_end!r} as plain text")
    return marks


def _ignores_tools(structure: StockStructure) -> bool:
    """The header prints `xml_tools` but never reads `tools` (what vLLM passes)."""
    return "xml_tools" in structure.header_reads and "tools" not in structure.header_reads


def _derive(
    structure: StockStructure, token_map: TokenMap, variant: Variant, close_system_turn: bool
) -> str:
    src = structure.source
    loop, gen = structure.loop, structure.generation
    mode = structure.mode_variable
    generation_tags = structure.loop_has_generation_tag
    prefix = _fill(
        _LOOP_PREFIX,
        token_map,
        mode=mode,
        loop_right=loop.open.right,
        generation_open="{%- generation -%}" if generation_tags else "",
        generation_close="{%- endgeneration -%}" if generation_tags else "",
    )
    endif = "{%" + loop.close.left + " endif -%}"
    if variant == "fixed":
        generation = (
            _fill(_FIXED_GENERATION_PREFIX, token_map, mode=mode, left="%" + gen.open.left)
            + "\n"
            + src[gen.open.start : gen.close.end]
            + "\n{%- endif "
            + gen.close.right
            + "%}"
        )
    else:
        generation = _fill(
            _SEED_GENERATION, token_map, mode=mode, left="%" + gen.open.left, right=gen.close.right
        )

    def nl(marker: str) -> str:
        """A newline for readability, only where a neighbouring "-" marker strips it."""
        return "\n" if marker == "-" else ""

    header = structure.header
    head = ""
    if _ignores_tools(structure):
        head += _TOOLS_AS_XML_TOOLS
    if close_system_turn:
        for tag in reversed(_system_turn_markers(structure, token_map)):
            mark = Template(_MARK_SYSTEM_CLOSED).substitute(right="-" if tag.right == "-" else "+")
            header = header[: tag.end] + mark + header[tag.end :]
        head += "{%+ set smolserve_state = namespace(system_closed=false) +%}"
        header += (
            nl(loop.open.left)
            + _fill(_CLOSE_SYSTEM_TURN, token_map, left="%" + loop.open.left)
            + "\n"
        )
    comment = (
        f"{{# Generated by smolserve (variant {variant}, closeSystemTurn "
        f"{str(close_system_turn).lower()}) from a stock SmolLM3 chat template with sha256 "
        f"{hashlib.sha256(src.encode()).hexdigest()}. See docs/templates.md. #}}\n"
    )
    return (
        comment
        + head
        + header
        + src[loop.open.start : loop.open.end]
        + "\n"
        + prefix
        + nl(loop.open.right)
        + src[loop.open.end : loop.close.start]
        + nl(loop.close.left)
        + endif
        + "\n"
        + src[loop.close.start : gen.open.start]
        + generation
        + src[gen.close.end :]
    )


_SMOKE_CONVERSATIONS: tuple[tuple[list[dict[str, Any]], bool], ...] = (
    ([{"role": "user", "content": "Hello"}], True),
    (
        [{"role": "system", "content": "Be brief. /no_think"}, {"role": "user", "content": "Hi"}],
        True,
    ),
)


def _smoke_render(text: str, tokenizer: Any) -> None:
    """Render a couple of conversations so a template that cannot render is never written."""
    for messages, prompt in _SMOKE_CONVERSATIONS:
        for thinking in (True, False):
            render_prompt(
                text,
                tokenizer,
                messages,
                enable_thinking=thinking,
                add_generation_prompt=prompt,
                today=FROZEN_DATE,
            )


def stock_template_of(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: the default one is served
        template = template.get("default")
    if not isinstance(template, str) or not template.strip():
        raise UsageError("tokenizer has no chat template to derive from")
    return template


def check_variant(variant: str) -> None:
    """``UsageError`` unless ``variant`` is one of ``VARIANTS``."""
    if variant not in VARIANTS:
        raise UsageError(
            f"unknown template variant {variant!r} (choose from {', '.join(VARIANTS)})"
        )


def generate_template(
    tokenizer: Any,
    variant: str = "fixed",
    *,
    close_system_turn: bool = True,
    stock_template: str | None = None,
) -> GeneratedTemplate:
    """Make the ``variant`` template from ``tokenizer`` (and its stock template, or the one given).

    ``close_system_turn`` makes sure the system turn ends with the turn-end tag even where the
    stock header leaves it open (one hub revision closes it only when tools are given); see
    docs/templates.md. Raises ``UsageError`` for bad input (unknown variant, tokenizer without
    SmolLM3's tags, unrecognized stock structure) and ``SmolserveError`` if the result fails to
    render.
    """
    check_variant(variant)
    token_map = read_token_map(tokenizer)
    stock = stock_template if stock_template is not None else stock_template_of(tokenizer)
    stock_sha = hashlib.sha256(stock.encode("utf-8")).hexdigest()
    notes: list[str] = []
    if variant == "stock":
        text = stock
        notes.append("stock template unchanged: tool history is not rendered correctly")
    else:
        structure = analyse(stock)
        _check_tags_in_header(structure, token_map)
        text = _derive(structure, token_map, variant, close_system_turn)  # type: ignore[arg-type]
        if _ignores_tools(structure):
            notes.append(
                "the stock header reads only xml_tools: tools are passed to it as xml_tools"
            )
        if variant == "seed":
            notes.append("seed: /no_think prompt has no empty think block (parsers may misread)")
    try:
        _smoke_render(text, tokenizer)
    except SmolserveError as exc:
        raise SmolserveError(f"{variant} template does not render: {exc}") from None
    return GeneratedTemplate(
        text=text,
        variant=variant,  # type: ignore[arg-type]
        token_map=token_map,
        close_system_turn=close_system_turn,
        stock_sha256=stock_sha,
        notes=tuple(notes),
    )
