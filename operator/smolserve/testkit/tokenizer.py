"""An offline, deterministic SmolLM3-compatible tokenizer for tests, CI and the quick start.

Model hubs are unreachable where smolserve is built and tested, so this stands in for the real
SmolLM3-3B tokenizer: 128256 ids; ids 128000-128255 are SmolLM3's added tokens in order (the
tags at their real ids); below them a byte-level BPE trained on a small built-in corpus and
padded with filler tokens up to 128000. No merged token contains ``<`` or ``>``: a random-weight
model could otherwise spell a tag out of fragments, which breaks text-based tag parsing.
The chat template is the stock-equivalent one in ``stock_chat_template.jinja``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from smolserve.errors import UsageError
from smolserve.template.tokens import SMOLLM3_TAGS

BASE_VOCAB_SIZE = 128000
VOCAB_SIZE = 128256
TRAINED_VOCAB_SIZE = 6000  # merges learned from the corpus; the rest are fillers

# Tags SmolLM3 may or may not flag special (its model card leaves it open); `tags_special` picks.
_OPTIONAL_SPECIAL = {
    SMOLLM3_TAGS[role][0]
    for role in (
        "think_open",
        "think_close",
        "tool_response_open",
        "tool_response_close",
        "tool_call_open",
        "tool_call_close",
    )
}

_LLAMA3_NAMED = {
    128000: "<|begin_of_text|>",
    128001: "<|end_of_text|>",
    128004: "<|finetune_right_pad_id|>",
    128005: "<|reserved_special_token_2|>",
    128006: "<|start_header_id|>",
    128007: "<|end_header_id|>",
    128008: "<|eom_id|>",
    128009: "<|eot_id|>",
    128010: "<|python_tag|>",
}

_CORPUS = """\
You are a helpful AI assistant named SmolLM, trained by Hugging Face.
Knowledge Cutoff Date: June 2025. Today Date: 01 January 2026. Reasoning Mode: /think /no_think
## Metadata ## Custom Instructions ## Tools ### XML Tools ### Python Tools None
You may call one or more functions to assist with the user query.
You are provided with function signatures within tools XML tags.
For each function call, return a json object with function name and arguments.
{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather",
"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
{"name": "get_weather", "arguments": {"city": "Copenhagen", "unit": "celsius"}}
{"temperature": 21, "condition": "sunny", "humidity": 0.45, "error": null, "ok": true}
The user asks a question and the assistant answers it. Let me think step by step about
what the question means, check the facts, and then give the final answer in a short sentence.
Hello! How can I help you today? What is the weather like in Paris, London, Berlin and Rome?
Thank you. You are welcome. The answer is 42. Yes, no, maybe; first, second, third.
user assistant system tool reasoning content answer question search query result results
def main(): return None  # Python code, print("hello world"), import json, for x in range(10):
0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 2025 2026 3.14 -1 +1 = * / % ( ) [ ] { } , . : ; ! ? ' "
"""


def _added_tokens() -> list[str]:
    """SmolLM3's texts for ids 128000-128255, in id order."""
    named = dict(_LLAMA3_NAMED)
    named.update(dict(SMOLLM3_TAGS.values()))
    texts = []
    for token_id in range(BASE_VOCAB_SIZE, VOCAB_SIZE):
        # Llama 3.1 numbering of the reserved tokens, which SmolLM3 inherited for unused ids.
        texts.append(named.get(token_id, f"<|reserved_special_token_{token_id - 128008}|>"))
    return texts


def _filler(index: int) -> str:
    """A distinct filler token made of letters only (byte-level text for "␠fill<letters>")."""
    letters = []
    for _ in range(4):
        index, digit = divmod(index, 26)
        letters.append(chr(ord("a") + digit))
    return "Ġfill" + "".join(reversed(letters))


def _build_tokenizer_json(tags_special: bool) -> str:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = BpeTrainer(
        vocab_size=TRAINED_VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = byte_level
    # The corpus holds no '<' or '>', so no merge can produce a token containing one.
    corpus = _CORPUS.replace("<", " ").replace(">", " ").splitlines()
    bpe.train_from_iterator(corpus, trainer=trainer)
    state = json.loads(bpe.to_str())
    vocab: dict[str, int] = state["model"]["vocab"]
    merges = state["model"]["merges"]
    fillers = (_filler(i) for i in range(BASE_VOCAB_SIZE))
    for token in fillers:
        if len(vocab) == BASE_VOCAB_SIZE:
            break
        vocab.setdefault(token, len(vocab))

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) for m in merges]))
    tokenizer.pre_tokenizer = byte_level
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    for token_id, text in enumerate(_added_tokens(), start=BASE_VOCAB_SIZE):
        special = tags_special or token_id not in _OPTIONAL_SPECIAL
        added = AddedToken(text, special=special, normalized=False)
        if special:
            tokenizer.add_special_tokens([added])
        else:
            tokenizer.add_tokens([added])
        if tokenizer.token_to_id(text) != token_id:
            raise AssertionError(f"test kit: {text!r} did not land at id {token_id}")
    return tokenizer.to_str()


def _tokenizer_config() -> dict[str, object]:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|finetune_right_pad_id|>",
        "model_max_length": 65536,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
    }


def stock_template_text() -> str:
    """The test kit's stock-equivalent SmolLM3 chat template (both documented bugs included)."""
    return (
        resources.files("smolserve.testkit")
        .joinpath("stock_chat_template.jinja")
        .read_text(encoding="utf-8")
    )


def build_tokenizer(out_dir: str | os.PathLike[str], *, tags_special: bool = False) -> Path:
    """Write the test-kit tokenizer into ``out_dir`` (created or replaced) and return its path.

    ``tags_special`` flags the think, tool-call and tool-response tags special (vLLM then strips
    them from output text unless told not to); by default only the turn and control tokens are.
    The same arguments always produce the same bytes.
    """
    out = Path(out_dir)
    files = {
        "tokenizer.json": _build_tokenizer_json(tags_special),
        "tokenizer_config.json": json.dumps(_tokenizer_config(), indent=2) + "\n",
        "chat_template.jinja": stock_template_text(),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create tokenizer directory {out}: {exc.strerror}") from None
    staging = Path(tempfile.mkdtemp(prefix=".testkit-", dir=out))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        for name in files:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
