"""The test-kit tokenizer: SmolLM3's ids and tags, a clean BPE below them, deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smolserve.cli import main
from smolserve.template.tokens import SMOLLM3_TAGS
from smolserve.testkit import VOCAB_SIZE, build_tokenizer, stock_template_text

OPTIONAL_SPECIAL = {"think_open", "think_close"} | {
    r for r in SMOLLM3_TAGS if r.startswith(("tool_call", "tool_response"))
}


def test_vocabulary_size_and_added_tokens(testkit_tokenizer) -> None:
    assert len(testkit_tokenizer) == VOCAB_SIZE == 128256
    added = testkit_tokenizer.added_tokens_decoder
    assert sorted(added) == list(range(128000, 128256))
    assert added[128000].content == "<|begin_of_text|>"
    assert added[128001].content == "<|end_of_text|>"
    assert added[128004].content == "<|finetune_right_pad_id|>"
    for token_id, text in SMOLLM3_TAGS.values():
        assert added[token_id].content == text


@pytest.mark.parametrize("tags_special", [False, True])
def test_tag_special_flags(tags_special, testkit_tokenizer, testkit_tokenizer_special) -> None:
    tokenizer = testkit_tokenizer_special if tags_special else testkit_tokenizer
    added = tokenizer.added_tokens_decoder
    for role, (token_id, _) in SMOLLM3_TAGS.items():
        expected = tags_special or role not in OPTIONAL_SPECIAL
        assert added[token_id].special is expected, role
    assert all(added[i].special for i in (128000, 128001, 128004, 128011, 128012))


def test_no_merged_token_contains_angle_brackets(testkit_tokenizer_dir: Path) -> None:
    model = json.loads((testkit_tokenizer_dir / "tokenizer.json").read_text())["model"]
    assert len(model["vocab"]) == 128000
    assert sorted(model["vocab"].values()) == list(range(128000))
    offenders = [t for t in model["vocab"] if len(t) > 1 and ("<" in t or ">" in t)]
    assert offenders == []
    merged = ["".join(pair) for pair in model["merges"]]
    assert merged and not [t for t in merged if "<" in t or ">" in t]


def test_tags_encode_to_single_ids_and_text_round_trips(any_testkit_tokenizer) -> None:
    tokenizer = any_testkit_tokenizer
    for token_id, text in SMOLLM3_TAGS.values():
        assert tokenizer.encode(text, add_special_tokens=False) == [token_id]
    text = 'Hi <think>hmm</think>\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
    assert len(ids) < len(text) / 2  # the BPE merges real text, not one id per byte


def test_build_is_deterministic(tmp_path: Path, testkit_tokenizer_dir: Path) -> None:
    again = build_tokenizer(tmp_path / "again")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (again / name).read_bytes() == (testkit_tokenizer_dir / name).read_bytes()


def test_ships_the_stock_equivalent_template(
    testkit_tokenizer_dir: Path, testkit_tokenizer
) -> None:
    assert (testkit_tokenizer_dir / "chat_template.jinja").read_text() == stock_template_text()
    assert testkit_tokenizer.chat_template == stock_template_text()


def test_cli_builds_a_tokenizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["testkit", "tokenizer", "--out", str(tmp_path / "tok"), "--tags-special"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"path": str(tmp_path / "tok"), "vocab_size": 128256, "tags_special": True}
    config = json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|im_end|>"


def test_cli_refuses_an_output_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    occupied = tmp_path / "file"
    occupied.write_text("x")
    assert main(["testkit", "tokenizer", "--out", str(occupied)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"smolserve: error: cannot create tokenizer directory {occupied}: File exists"
