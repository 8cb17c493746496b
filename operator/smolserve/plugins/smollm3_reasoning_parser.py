"""vLLM reasoning parser for SmolLM3, registered as ``smollm3``.

Loaded by the stock ``vllm/vllm-openai`` image with ``--reasoning-parser-plugin FILE`` from a
ConfigMap, so this file imports only vLLM and the standard library.

SmolLM3's chat template picks the reasoning mode from ``enable_thinking`` (default: think) and
lets a ``/think`` or ``/no_think`` in the system message override it. In no-think mode the model
writes no reasoning, so its whole output is content; stock parsers that only look for
``</think>`` put that answer (and its tool calls) into ``reasoning``. This parser decides the mode
the same way the template does:

* non-streaming: from the request (chat-template kwargs, then the system message's flags);
* streaming: from the prompt vLLM rendered. The generation prompt (the tail after the last
  ``<|im_start|>``) is authoritative when it holds think tags: an open ``<think>`` means the
  model is reasoning, a closed ``<think></think>`` means reasoning is over. A bare generation
  prompt falls back to the kwargs and the flags found in the prompt's system turn. Only the tail
  is scanned, so a ``</think>`` quoted in a system prompt cannot end reasoning early.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vllm.entrypoints.generate.base.protocol import DeltaMessage
from vllm.reasoning.abs_reasoning_parsers import ReasoningParser, ReasoningParserManager

THINK_START = "<think>"
THINK_END = "</think>"
TURN_START = "<|im_start|>"
THINK_FLAG = "/think"
NO_THINK_FLAG = "/no_think"


def flag_mode(text: str) -> bool | None:
    """The mode a system text asks for: True (think), False (no-think) or None (no flag).

    ``/no_think`` is checked first, as the SmolLM3 template does.
    """
    if NO_THINK_FLAG in text:
        return False
    if THINK_FLAG in text:
        return True
    return None


def decide_thinking(enable_thinking: object, system_text: str | None) -> bool:
    """Think or not, the way the SmolLM3 template decides: the kwarg, then the system flags."""
    thinking = enable_thinking is not False
    if system_text:
        flagged = flag_mode(system_text)
        if flagged is not None:
            thinking = flagged
    return thinking


def message_text(message: Any) -> str:
    """The text of a chat message whose content is a string or a list of text parts."""
    content = message.get("content") if isinstance(message, Mapping) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text") or ""
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def system_text_of(messages: Sequence[Any] | None) -> str | None:
    """The first message's text when it is a system message, else None."""
    if not messages:
        return None
    first = messages[0]
    if isinstance(first, Mapping) and first.get("role") == "system":
        return message_text(first)
    return None


def split_reasoning(text: str) -> tuple[str | None, str | None]:
    """Split think-mode output into (reasoning, content).

    A leading ``<think>`` is dropped (the template may or may not have opened the block); without
    a ``</think>`` the output is all reasoning (generation stopped while thinking).
    """
    before, start, after = text.partition(THINK_START)
    body = after if start and not before.strip() else text
    reasoning, end, content = body.partition(THINK_END)
    if not end:
        return body or None, None
    return reasoning or None, content or None


class SmolLM3ReasoningParser(ReasoningParser):
    """Separates SmolLM3's ``<think>`` block, deciding think or no-think like its template."""

    def __init__(self, tokenizer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(tokenizer, *args, **kwargs)
        template_kwargs = kwargs.get("chat_template_kwargs") or {}
        self._enable_thinking = template_kwargs.get("enable_thinking")
        ids = {}
        for text in (THINK_START, THINK_END, TURN_START):
            token_id = self.vocab.get(text)
            if token_id is None:
                raise RuntimeError(f"smollm3 reasoning parser: tokenizer has no {text!r} token")
            ids[text] = token_id
        self._start_id = ids[THINK_START]
        self._end_id = ids[THINK_END]
        self._turn_id = ids[TURN_START]

    @property
    def reasoning_start_str(self) -> str:
        return THINK_START

    @property
    def reasoning_end_str(self) -> str:
        return THINK_END

    def adjust_request(self, request: Any) -> Any:
        # The think tags may be special tokens; the text-based split needs to see them.
        request.skip_special_tokens = False
        return request

    def _prompt_system_text(self, input_ids: Sequence[int]) -> str | None:
        """The first turn's text when the prompt starts with a system turn."""
        starts = [i for i, token in enumerate(input_ids) if token == self._turn_id]
        if not starts:
            return None
        first = starts[0]
        end = starts[1] if len(starts) > 1 else len(input_ids)
        text = self.model_tokenizer.decode(list(input_ids[first + 1 : end]))
        return text if text.startswith("system") else None

    def is_reasoning_end(self, input_ids: Sequence[int]) -> bool:
        # Called with the rendered prompt: does generation start after reasoning?
        for token in reversed(input_ids):
            if token == self._end_id:
                return True
            if token == self._start_id:
                return False
            if token == self._turn_id:
                break
        return not decide_thinking(self._enable_thinking, self._prompt_system_text(input_ids))

    def is_reasoning_end_streaming(
        self, input_ids: Sequence[int], delta_ids: Iterable[int]
    ) -> bool:
        return self._end_id in delta_ids

    def extract_content_ids(self, input_ids: list[int]) -> list[int]:
        if self._end_id not in input_ids:
            return []
        return input_ids[input_ids.index(self._end_id) + 1 :]

    def extract_reasoning(self, model_output: str, request: Any) -> tuple[str | None, str | None]:
        messages = getattr(request, "messages", None)
        if not decide_thinking(self._enable_thinking, system_text_of(messages)):
            return None, model_output or None
        return split_reasoning(model_output)

    def extract_reasoning_streaming(
        self,
        previous_text: str,
        current_text: str,
        delta_text: str,
        previous_token_ids: Sequence[int],
        current_token_ids: Sequence[int],
        delta_token_ids: Sequence[int],
    ) -> DeltaMessage | None:
        # Only called while reasoning is open: the prompt left the model thinking.
        if len(delta_token_ids) == 1 and delta_token_ids[0] in (self._start_id, self._end_id):
            return None
        if self._end_id in previous_token_ids:
            return DeltaMessage(content=delta_text)
        text = delta_text
        if self._start_id in delta_token_ids:
            text = text.partition(THINK_START)[2]
        if self._end_id in delta_token_ids:
            reasoning, _, content = text.partition(THINK_END)
            return DeltaMessage(reasoning=reasoning or None, content=content or None)
        return DeltaMessage(reasoning=text) if text else None


ReasoningParserManager.register_module(name="smollm3", module=SmolLM3ReasoningParser)
