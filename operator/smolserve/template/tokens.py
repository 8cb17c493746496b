"""SmolLM3's tag tokens, read by id from a tokenizer and checked.

The ids are SmolLM3's (Llama-3 vocabulary, tags added at 128002-128016). The template engine
never writes a tag it has not read from the tokenizer: the text at each id is looked up, compared
with the tag SmolLM3 puts there, and only then used. A tokenizer whose tag is missing or renamed
is refused, because a template built for it would render text the model never saw as one token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smolserve.errors import UsageError

# role -> (id, the text SmolLM3 has at that id)
SMOLLM3_TAGS: dict[str, tuple[int, str]] = {
    "think_open": (128002, "<think>"),
    "think_close": (128003, "</think>"),
    "im_start": (128011, "<|im_start|>"),
    "im_end": (128012, "<|im_end|>"),
    "tool_response_open": (128013, "<tool_response>"),
    "tool_response_close": (128014, "</tool_response>"),
    "tool_call_open": (128015, "<tool_call>"),
    "tool_call_close": (128016, "</tool_call>"),
}


@dataclass(frozen=True)
class Tag:
    id: int
    text: str
    special: bool


@dataclass(frozen=True)
class TokenMap:
    """The tag texts a template may use, each tied to the id it encodes to."""

    think_open: Tag
    think_close: Tag
    im_start: Tag
    im_end: Tag
    tool_response_open: Tag
    tool_response_close: Tag
    tool_call_open: Tag
    tool_call_close: Tag

    def tags(self) -> dict[str, Tag]:
        return {role: getattr(self, role) for role in SMOLLM3_TAGS}

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            role: {"id": tag.id, "text": tag.text, "special": tag.special}
            for role, tag in self.tags().items()
        }


def read_token_map(tokenizer: Any) -> TokenMap:
    """Read every tag by id from ``tokenizer`` and check its text; ``UsageError`` otherwise."""
    added = tokenizer.added_tokens_decoder  # id -> AddedToken
    tags: dict[str, Tag] = {}
    for role, (token_id, expected) in SMOLLM3_TAGS.items():
        token = added.get(token_id)
        if token is None:
            raise UsageError(
                f"tokenizer has no added token at id {token_id} "
                f"(SmolLM3 puts {expected!r} there): not a SmolLM3 tokenizer"
            )
        if token.content != expected:
            raise UsageError(
                f"tokenizer has {token.content!r} at id {token_id} where SmolLM3 has {expected!r}"
            )
        tags[role] = Tag(id=token_id, text=token.content, special=bool(token.special))
    return TokenMap(**tags)
