"""The served stack on a real vLLM server: the project's default deployment (fixed template +
smollm3 parser, tags special, LoRA), then the template-by-reasoning-parser matrix, which writes
docs/compatibility.md.

Tests run in file order and share one server at a time (see `ServerPool`): the default
deployment's tests come first, then one server per reasoning parser. A matrix server mounts the
fixed template exactly as the operator does and serves the `fixed` cells with it; the `seed` and
`stock` cells pass their template in the request body (`--trust-request-chat-template`, a
test-only flag). The operator's args do not depend on the variant (only the mounted file does),
so this is the same server a `seed` or `stock` SmolServe runs, at 5 server starts instead of 13.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import vmatrix as mx
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families
from vfailures import expected_failures
from vpool import ADAPTER_NAME, SERVED_NAME, ServerKey, ServerPool, template_text
from vreport import render_compatibility
from vstack import http_json

from chart import dashboard as dash
from smolserve.manifests.autoscaling import VLLM_SERIES

pytestmark = pytest.mark.vllm

DOC = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"
DEFAULT = ServerKey("fixed", "smollm3", tags_special=True, lora=True)
# Grouped by parser, so consecutive rows share a server.
ROWS = [(v, p) for p in ("smollm3", "deepseek_r1", "qwen3", "none") for v in mx.VARIANTS]


def client(server) -> OpenAI:
    return OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def run_row(
    pool: ServerPool, key: ServerKey, variant: str, chat_template: str | None = None
) -> dict[str, list[str]]:
    """Every cell of a row: cell key -> mismatches (empty when right)."""
    server = pool.get(key)
    api = client(server)
    results = {}
    for cell in mx.cells(variant, key.parser):
        got, _ = mx.run_cell(api, server.base_url, SERVED_NAME, cell, chat_template)
        results[cell.key] = mx.mismatches(mx.expected(cell.mode, cell.output), got)
    return results


class MatrixResults:
    """Rows computed once per session, in the order the tests ask for them."""

    def __init__(self, pool: ServerPool) -> None:
        self.pool = pool
        self.rows: dict[tuple[str, str], dict[str, list[str]]] = {}

    def row(self, variant: str, parser: str) -> dict[str, list[str]]:
        if (variant, parser) not in self.rows:
            key = ServerKey("fixed", parser, request_templates=True)
            template = None
            if variant != key.variant:
                template = template_text(self.pool.assets.model_dir(False), variant)
            self.rows[(variant, parser)] = run_row(self.pool, key, variant, template)
        return self.rows[(variant, parser)]


@pytest.fixture(scope="session")
def matrix(servers: ServerPool) -> MatrixResults:
    return MatrixResults(servers)


# --- the project's default deployment: fixed template, smollm3 parser, special tags, LoRA ---


def test_default_stack_passes_every_cell(servers: ServerPool) -> None:
    results = run_row(servers, DEFAULT, DEFAULT.variant)
    assert {key: why for key, why in results.items() if why} == {}


def test_lora_adapter_listed_under_parent_and_served(servers: ServerPool) -> None:
    server = servers.get(DEFAULT)
    models = {m["id"]: m for m in http_json(f"{server.base_url}/v1/models")["data"]}
    assert models[ADAPTER_NAME]["parent"] == SERVED_NAME
    answer = client(server).chat.completions.create(
        model=ADAPTER_NAME,
        messages=[{"role": "user", "content": mx.QUESTION}],
        max_tokens=8,
        temperature=0,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    assert answer.model == ADAPTER_NAME
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage.completion_tokens > 0


def test_the_dashboard_and_the_autoscalers_read_series_this_vllm_serves(
    servers: ServerPool,
) -> None:
    """Every vLLM series the chart's Grafana dashboard and the autoscalers query is one this
    real vLLM 0.32 serves at /metrics (after the requests above), with the labels they use."""
    server = servers.get(DEFAULT)
    with urllib.request.urlopen(f"{server.base_url}/metrics", timeout=30) as response:
        text = response.read().decode()
    served = dash.sample_names(text)
    wanted = dash.series(dash.load(), "vllm:") | set(VLLM_SERIES.values())
    assert wanted and not wanted - served, f"not served by vLLM: {sorted(wanted - served)}"
    # The dashboard groups requests by finish reason; the picker reads the loaded adapters.
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert any("finished_reason" in s.labels for s in families["vllm:request_success"].samples)
    assert "vllm:lora_requests_info" in served


def test_server_renders_tool_history_as_the_fixed_template(servers: ServerPool, assets) -> None:
    """Multi-turn fidelity: read the prompt back from the server and compare it with the engine's
    own rendering of the fixed template (arguments as dicts, as vLLM passes them)."""
    from smolserve.template import load_tokenizer, render_prompt

    server = servers.get(DEFAULT)
    calls = [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Rome", "unit": "celsius"}},
    ]
    results = ['{"temperature": 21}', '{"temperature": 25}']
    wire_messages = [
        {"role": "system", "content": mx.SYSTEM},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Let me check both.",
            "tool_calls": [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                }
                for i, c in enumerate(calls)
            ],
        },
        *[
            {"role": "tool", "tool_call_id": f"call_{i}", "content": r}
            for i, r in enumerate(results)
        ],
        {"role": "assistant", "content": "Paris 21, Rome 25."},
        {"role": "user", "content": "Thanks."},
    ]
    prompt = mx.server_prompt(
        server.base_url, SERVED_NAME, wire_messages, {"enable_thinking": False}, mx.TOOLS
    )
    for call in calls:
        assert f"<tool_call>\n{json.dumps(call)}\n</tool_call>" in prompt
    for result in results:
        assert f"<tool_response>\n{result}\n</tool_response>" in prompt

    engine_messages = json.loads(json.dumps(wire_messages))
    for call in engine_messages[2]["tool_calls"]:
        call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    model_dir = assets.model_dir(True)
    expected = render_prompt(
        template_text(model_dir, "fixed"),
        load_tokenizer(str(model_dir)),
        engine_messages,
        tools=mx.TOOLS,
        enable_thinking=False,
    )
    assert prompt == expected


# --- the matrix ---


@pytest.mark.parametrize(("variant", "parser"), ROWS, ids=[f"{v}-{p}" for v, p in ROWS])
def test_matrix_row(matrix: MatrixResults, variant: str, parser: str) -> None:
    """The cells that fail are exactly the known failures (none for fixed + smollm3)."""
    results = matrix.row(variant, parser)
    failing = {key for key, why in results.items() if why}
    assert failing == expected_failures(variant, parser), {
        key: results[key] for key in failing ^ expected_failures(variant, parser)
    }


def test_smollm3_passes_what_any_stock_parser_passes(matrix: MatrixResults) -> None:
    """The default-parser rule: with the fixed template, smollm3 passes every cell."""
    ours = matrix.row("fixed", "smollm3")
    assert all(not why for why in ours.values())
    for variant in mx.VARIANTS:
        ours = {k for k, why in matrix.row(variant, "smollm3").items() if not why}
        for stock in ("deepseek_r1", "qwen3", "none"):
            theirs = {k for k, why in matrix.row(variant, stock).items() if not why}
            assert theirs <= ours, (variant, stock, sorted(theirs - ours))


def test_compatibility_doc_is_current(matrix: MatrixResults, servers: ServerPool) -> None:
    """docs/compatibility.md is generated from this run. If it differs, the run rewrites it and
    fails, so a stale committed copy cannot pass CI unnoticed."""
    rows = {(v, p): matrix.row(v, p) for v, p in ROWS}
    servers.close()
    text = render_compatibility(rows)
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if current != text:
        DOC.write_text(text, encoding="utf-8")
        pytest.fail(f"{DOC} was out of date; it has been regenerated: review and commit it")
