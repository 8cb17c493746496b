"""``smolserve template generate|verify|render`` through the real CLI entry point, including every
bad input: one line on stderr, exit 2 for usage and 1 for failure, and no output file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from smolserve.cli import main
from smolserve.testkit import stock_template_text


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["template", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("smolserve: error: ")
    return lines[0]


def test_generate_writes_template_and_summary(tmp_path, capsys, testkit_tokenizer_dir) -> None:
    out = tmp_path / "chat_template.jinja"
    code, stdout, _ = run(
        capsys, "generate", "--tokenizer", str(testkit_tokenizer_dir), "--out", str(out)
    )
    assert code == 0
    summary = json.loads(stdout)
    text = out.read_text(encoding="utf-8")
    assert summary["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert summary["variant"] == "fixed"
    assert summary["source"] == str(testkit_tokenizer_dir)
    assert summary["revision"] is None
    assert summary["close_system_turn"] is True
    assert summary["token_map"]["tool_call_open"] == {
        "id": 128015,
        "text": "<tool_call>",
        "special": False,
    }
    assert set(summary["versions"]) == {"smolserve", "transformers", "tokenizers", "jinja2"}
    assert summary["out"] == str(out)
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


@pytest.mark.parametrize("variant", ["fixed", "seed", "stock"])
def test_generate_verify_then_verify_command(
    variant, tmp_path, capsys, testkit_tokenizer_dir
) -> None:
    out = tmp_path / "t.jinja"
    tok = str(testkit_tokenizer_dir)
    code, _, err = run(
        capsys, "generate", "--tokenizer", tok, "--variant", variant, "--out", str(out), "--verify"
    )
    if variant == "stock":
        assert code == 1
        line = err.strip().splitlines()[-1]
        assert line.startswith("smolserve: error: stock template failed verification (")
        assert "result: FAIL" in err  # the readable report comes first
        assert not out.exists()
        out.write_text(stock_template_text())
    else:
        assert code == 0, err
    code, stdout, _ = run(capsys, "verify", "--template", str(out), "--tokenizer", tok)
    assert code == (0 if variant == "fixed" else 1)
    verdict = stdout.strip().splitlines()[-1]
    assert verdict.startswith("result: PASS" if variant == "fixed" else "result: FAIL (")
    if variant == "seed":
        assert (
            run(
                capsys,
                "verify",
                "--template",
                str(out),
                "--tokenizer",
                tok,
                "--prompt-style",
                "seed",
            )[0]
            == 0
        )


def test_render_prints_the_prompt(tmp_path, capsys, testkit_tokenizer_dir) -> None:
    template = tmp_path / "t.jinja"
    tok = str(testkit_tokenizer_dir)
    assert run(capsys, "generate", "--tokenizer", tok, "--out", str(template))[0] == 0
    messages = tmp_path / "m.json"
    messages.write_text(json.dumps([{"role": "user", "content": "Hi"}]))
    tools = tmp_path / "tools.json"
    tools.write_text(
        json.dumps([{"type": "function", "function": {"name": "f", "parameters": {}}}])
    )
    code, stdout, _ = run(
        capsys,
        "render",
        "--template",
        str(template),
        "--tokenizer",
        tok,
        "--messages",
        str(messages),
        "--tools",
        str(tools),
        "--enable-thinking",
        "false",
        "--date",
        "2026-03-04",
    )
    assert code == 0
    assert "Today Date: 04 March 2026\nReasoning Mode: /no_think\n" in stdout
    assert '{"type": "function", "function": {"name": "f"' in stdout
    assert stdout.endswith(
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n"
    )
    code, stdout, _ = run(
        capsys,
        "render",
        "--template",
        str(template),
        "--tokenizer",
        tok,
        "--messages",
        str(messages),
        "--no-generation-prompt",
    )
    assert code == 0 and stdout.endswith("Hi<|im_end|>\n")


def _edited_tokenizer(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    data = json.loads((dst / "tokenizer.json").read_text())
    edit(data["added_tokens"])
    (dst / "tokenizer.json").write_text(json.dumps(data))
    return dst


def _rename(tokens: list) -> None:
    next(t for t in tokens if t["id"] == 128015)["content"] = "<toolcall>"


def _drop(tokens: list) -> None:
    """A tokenizer cut short at 128013 (ids are assigned in order, so a gap cannot be made)."""
    tokens[:] = [t for t in tokens if t["id"] < 128013]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_rename, "tokenizer has '<toolcall>' at id 128015 where SmolLM3 has '<tool_call>'"),
        (_drop, "tokenizer has no added token at id 128013"),
    ],
)
def test_renamed_or_missing_tag(edit, message, tmp_path, capsys, testkit_tokenizer_dir) -> None:
    tok = _edited_tokenizer(testkit_tokenizer_dir, tmp_path / "tok", edit)
    out = tmp_path / "out.jinja"
    code, stdout, err = run(capsys, "generate", "--tokenizer", str(tok), "--out", str(out))
    assert code == 2 and stdout == ""
    assert message in one_line_error(err)
    assert not out.exists()
    code, _, err = run(
        capsys,
        "verify",
        "--template",
        str(testkit_tokenizer_dir / "chat_template.jinja"),
        "--tokenizer",
        str(tok),
    )
    assert code == 2 and message in one_line_error(err)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("unknown variant", 2, "unknown template variant 'best'"),
        ("missing directory", 2, "no such directory"),
        ("directory without tokenizer", 2, "no tokenizer.json in it"),
        ("file instead of a directory", 2, "not a directory"),
        ("revision for a directory", 2, "a revision applies to hub ids only"),
        ("unrecognized stock", 2, "stock chat template not recognized"),
        ("stock syntax error", 2, "stock chat template not recognized: syntax error on line 1"),
        ("unreadable stock file", 2, "cannot read stock template"),
        ("output directory missing", 2, "directory"),
    ],
)
def test_generate_bad_input(case, code, message, tmp_path, capsys, testkit_tokenizer_dir) -> None:
    out = tmp_path / "out.jinja"
    args = ["generate", "--tokenizer", str(testkit_tokenizer_dir), "--out", str(out)]
    if case == "unknown variant":
        args += ["--variant", "best"]
    elif case == "missing directory":
        args[2] = str(tmp_path / "nowhere")
    elif case == "directory without tokenizer":
        (tmp_path / "empty").mkdir()
        args[2] = str(tmp_path / "empty")
    elif case == "file instead of a directory":
        args[2] = str(_write(tmp_path / "tokenizer.json", "{}"))
    elif case == "revision for a directory":
        args += ["--revision", "v1"]
    elif case == "unrecognized stock":
        args += [
            "--from-template",
            str(_write(tmp_path / "s.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}")),
        ]
    elif case == "stock syntax error":
        args += [
            "--from-template",
            str(_write(tmp_path / "s.jinja", "{% for message in messages %}")),
        ]
    elif case == "unreadable stock file":
        args += ["--from-template", str(tmp_path / "missing.jinja")]
    elif case == "output directory missing":
        out = tmp_path / "no" / "out.jinja"
        args[-1] = str(out)
    got, stdout, err = run(capsys, *args)
    assert got == code and stdout == ""
    assert message in one_line_error(err)
    assert not out.exists()


def test_failing_template_is_exit_1_and_writes_nothing(
    tmp_path, capsys, testkit_tokenizer_dir
) -> None:
    raising = stock_template_text().replace(
        '{%- if message.role == "user" -%}',
        '{%- if message.role == "user" -%}{{ raise_exception("boom") }}',
    )
    out = tmp_path / "out.jinja"
    code, stdout, err = run(
        capsys,
        "generate",
        "--tokenizer",
        str(testkit_tokenizer_dir),
        "--out",
        str(out),
        "--from-template",
        str(_write(tmp_path / "s.jinja", raising)),
    )
    assert code == 1 and stdout == ""
    assert "fixed template does not render" in one_line_error(err) and "boom" in err
    assert not out.exists()


def test_failed_generate_keeps_an_existing_file(tmp_path, capsys, testkit_tokenizer_dir) -> None:
    out = _write(tmp_path / "out.jinja", "previous")
    code, _, _ = run(
        capsys,
        "generate",
        "--tokenizer",
        str(testkit_tokenizer_dir),
        "--out",
        str(out),
        "--variant",
        "stock",
        "--verify",
    )
    assert code == 1
    assert out.read_text() == "previous"


GOOD_MESSAGES = '[{"role": "user", "content": "x"}]'


@pytest.mark.parametrize(
    ("command", "template", "messages", "extra", "code", "message"),
    [
        ("verify", None, None, [], 2, "cannot read template"),
        ("verify", "stock", None, ["--prompt-style", "odd"], 2, "unknown prompt style"),
        ("render", "stock", "{not json", [], 2, "is not JSON"),
        (
            "render",
            "stock",
            '[{"role": "user", "content": "x"}, {"content": "y"}]',
            [],
            2,
            "message 2 must be an object with a role",
        ),
        ("render", "{{ raise_exception('nope') }}", GOOD_MESSAGES, [], 1, "nope"),
        # Found by tests/fuzz: each of these was a traceback (or a message on two lines).
        ("render", "{{ 1/0 }}", GOOD_MESSAGES, [], 1, "failed to render: division by zero"),
        (
            "render",
            "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
            GOOD_MESSAGES,
            [],
            1,
            "failed to render: maximum recursion depth exceeded",
        ),
        ("render", "{{ raise_exception('two\\nlines') }}", GOOD_MESSAGES, [], 1, ": two lines"),
        ("render", "{{ " + "(" * 400 + "1" + ")" * 400 + " }}", GOOD_MESSAGES, [], 2, "too deeply"),
        ("render", "stock", "[" * 100_000, [], 2, "JSON nested too deeply to read"),
    ],
    ids=[
        "missing-template",
        "prompt-style",
        "messages-json",
        "roleless-message",
        "raises",
        "divides-by-zero",
        "recurses",
        "raises-two-lines",
        "nests-too-deeply",
        "messages-nest-too-deeply",
    ],
)
def test_verify_and_render_bad_input(
    command, template, messages, extra, code, message, tmp_path, capsys, testkit_tokenizer_dir
) -> None:
    """``template``: None (a missing file), "stock" (the test kit's own) or a template's text."""
    if template is None:
        template_path = tmp_path / "missing"
    elif template == "stock":
        template_path = testkit_tokenizer_dir / "chat_template.jinja"
    else:
        template_path = _write(tmp_path / "t.jinja", template)
    args = [command, "--template", str(template_path), "--tokenizer", str(testkit_tokenizer_dir)]
    if messages is not None:
        args += ["--messages", str(_write(tmp_path / "m.json", messages))]
    got, stdout, err = run(capsys, *args, *extra)
    assert got == code and stdout == ""
    assert message in one_line_error(err)


@pytest.mark.parametrize("command", ["verify", "render"])
def test_template_syntax_error_is_one_line_with_the_line(
    command, tmp_path, capsys, testkit_tokenizer_dir
) -> None:
    """Reported once, before the battery (or the render) runs, naming the file and line."""
    template = _write(tmp_path / "t.jinja", "{% for m in messages %}\n{{ m.content }\n")
    args = [command, "--template", str(template), "--tokenizer", str(testkit_tokenizer_dir)]
    if command == "render":
        args += ["--messages", str(_write(tmp_path / "m.json", GOOD_MESSAGES))]
    got, stdout, err = run(capsys, *args)
    assert (got, stdout) == (2, "")
    assert (
        err == f"smolserve: error: template {template}: syntax error on line 2: unexpected '}}'\n"
    )


def test_a_messages_file_that_is_not_utf8_is_one_line(
    tmp_path, capsys, testkit_tokenizer_dir
) -> None:
    """Found by tests/fuzz: this was an AttributeError traceback."""
    messages = tmp_path / "m.json"
    messages.write_bytes(b"\xff\xfe[]")
    template = testkit_tokenizer_dir / "chat_template.jinja"
    args = ["render", "--template", str(template), "--tokenizer", str(testkit_tokenizer_dir)]
    got, stdout, err = run(capsys, *args, "--messages", str(messages))
    assert (got, stdout) == (2, "")
    assert one_line_error(err) == (
        f"smolserve: error: cannot read messages file {messages}: not UTF-8 "
        "(invalid start byte at byte 0)"
    )


def test_tokenizer_sources_that_cannot_load(tmp_path: Path) -> None:
    """Hub ids offline and without a cache, malformed ids, missing paths, unparsable files: one
    line each, exit 2 — in a fresh process so HF_HUB_OFFLINE and an empty HF_HOME apply."""
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "tokenizer.json").write_text("not json")
    sources = {
        "HuggingFaceTB/SmolLM3-3B": "the hub is unreachable (or HF_HUB_OFFLINE is set)",
        "not a valid id!!": "neither a directory nor a hub model id",
        str(tmp_path / "missing"): "no such directory",
        str(garbage): "cannot load tokenizer from",
    }
    script = textwrap.dedent(
        f"""
        import contextlib, io, json
        from smolserve.cli import main
        results = {{}}
        for source in {list(sources)!r}:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(["template", "generate", "--tokenizer", source,
                             "--out", {str(tmp_path / "t.jinja")!r}])
            results[source] = [code, err.getvalue()]
        print(json.dumps(results))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    for source, message in sources.items():
        code, err = results[source]
        assert code == 2, (source, err)
        assert message in one_line_error(err), (source, err)
    assert not (tmp_path / "t.jinja").exists()
