"""Render a chat template exactly as vLLM does: through transformers' ``apply_chat_template``.

The stock header prints today's date through transformers' ``strftime_now`` global. For
reproducible output (golden strings, verification) the date is frozen by passing a template
variable of the same name: Jinja looks a name up in the render context before the environment's
globals, and transformers passes every extra keyword of ``apply_chat_template`` into that
context. The renderer itself is untouched, and nothing global is patched.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from smolserve.errors import SmolserveError

# The date golden strings and the verify battery render with.
FROZEN_DATE = date(2026, 1, 15)


def frozen_strftime_now(today: date):
    """A stand-in for transformers' ``strftime_now`` global that always answers ``today``."""
    moment = datetime.combine(today, time())

    def strftime_now(fmt: str) -> str:
        return moment.strftime(fmt)

    return strftime_now


def syntax_error(template_text: str) -> str | None:
    """``syntax error on line N: …`` if the template does not parse in transformers' Jinja
    environment (the one vLLM renders with), else ``None``."""
    from jinja2 import TemplateSyntaxError
    from transformers.utils.chat_template_utils import _compile_jinja_template

    try:
        _compile_jinja_template(template_text)
    except TemplateSyntaxError as exc:
        return f"syntax error on line {exc.lineno}: {exc.message}"
    except RecursionError:  # Jinja's parser recurses per nested expression: (((((…)))))
        return "syntax error: expressions nested too deeply to parse"
    return None


def render_prompt(
    template_text: str,
    tokenizer: Any,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    enable_thinking: bool | None = None,
    add_generation_prompt: bool = True,
    today: date | None = None,
    **template_kwargs: Any,
) -> str:
    """The prompt text ``template_text`` makes of ``messages``, as vLLM would render it.

    ``enable_thinking=None`` leaves the template's own default; ``today`` freezes the date.
    Any error the template raises (it is code) becomes a one-line ``SmolserveError``.
    """
    from jinja2 import TemplateError

    kwargs = dict(template_kwargs)
    if enable_thinking is not None:
        kwargs["enable_thinking"] = enable_thinking
    if today is not None:
        kwargs["strftime_now"] = frozen_strftime_now(today)
    try:
        return tokenizer.apply_chat_template(
            messages,
            chat_template=template_text,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            tokenize=False,
            **kwargs,
        )
    except TemplateError as exc:
        line = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        raise SmolserveError(f"chat template failed to render{line}: {_one_line(exc)}") from None
    except Exception as exc:  # a template is code: 1/0, a macro calling itself, ...
        raise SmolserveError(f"chat template failed to render: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    """The error's message on one line (a template's raise_exception text may hold newlines)."""
    return " ".join(str(exc).split()) or type(exc).__name__
