"""Served-stack benchmark on a real vLLM server (CPU, tiny random SmolLM3), in one run:

* server start time (process start to healthy plus one real request), for two servers built by
  the operator's Deployment builder: the default stack (fixed template, hermes + smollm3 parsers)
  and the same stack with both parsers off;
* request latency p50/p95 over N forced tool-call requests (with reasoning), streaming and not;
* parser cost: the same N forced outputs requested from both servers, as a ratio of median
  latency (parsers on / parsers off), plus the parsers' own time measured in-process on that
  output (vLLM's composed hermes + smollm3 parser), as a share of the median request.

Usage: .venv/bin/python benchmarks/vllm_bench.py [-n 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "vllm"))

import vmatrix as mx
from vpool import SERVED_NAME, Assets, ServerKey, prepare_server, serve_object
from vstack import build_tiny_model, free_port

FORCED_MODE, FORCED_OUTPUT = "think", "reasoning_tool_call"
# The fixed template's think-mode generation prompt: it opens the think block.
GENERATION_PROMPT = "<|im_start|>assistant\n<think>\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def forced_request(server: Any, parsers_on: bool) -> tuple[dict[str, Any], str]:
    """The benchmark's request and the text it forces the model to write."""
    messages, kwargs = mx.conversation(FORCED_MODE, FORCED_OUTPUT)
    prompt = mx.server_prompt(server.base_url, SERVED_NAME, messages, kwargs, mx.TOOLS)
    forced = mx.forced_output(FORCED_MODE, FORCED_OUTPUT, prompt)
    request = {
        "model": SERVED_NAME,
        "messages": messages,
        "tools": mx.TOOLS,
        # Without a tool parser vLLM refuses "auto"; "none" renders the same prompt.
        "tool_choice": "auto" if parsers_on else "none",
        "temperature": 0,
        "max_tokens": 256,
        "logit_bias": {str(t): 100 for t in mx.TAG_IDS},
        "extra_body": {
            "structured_outputs": {"regex": mx.regex_literal(forced)},
            "chat_template_kwargs": kwargs,
        },
    }
    return request, forced


def time_requests(server: Any, parsers_on: bool, n: int, stream: bool) -> list[float]:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    request, forced = forced_request(server, parsers_on)
    # Warm the grammar cache, and check both servers produce the same output, parsed or not.
    message = client.chat.completions.create(**request).choices[0].message
    if parsers_on:
        assert message.reasoning and message.tool_calls, message
    else:
        assert message.content == forced, (message.content, forced)
    times = []
    for _ in range(n):
        began = time.perf_counter()
        if stream:
            for _chunk in client.chat.completions.create(stream=True, **request):
                pass
        else:
            client.chat.completions.create(**request)
        times.append(time.perf_counter() - began)
    return times


def in_process_parse_cost(model_dir: Path, forced: str, n: int) -> dict[str, float]:
    """Seconds per output spent in vLLM's own parser objects (hermes + smollm3), outside the
    server: non-streaming `parse`, and streaming `parse_delta` fed token by token."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.parser import ParserManager
    from vllm.tokenizers import get_tokenizer

    from smolserve.plugins import smollm3_reasoning_parser  # noqa: F401 (registers smollm3)

    tokenizer = get_tokenizer(str(model_dir))
    messages, kwargs = mx.conversation(FORCED_MODE, FORCED_OUTPUT)
    request = ChatCompletionRequest(
        model=SERVED_NAME,
        messages=messages,
        tools=mx.TOOLS,
        tool_choice="auto",
        chat_template_kwargs=kwargs,
    )
    parser_cls = ParserManager.get_parser(
        tool_parser_name="hermes", reasoning_parser_name="smollm3", enable_auto_tools=True
    )
    output = forced
    token_ids = tokenizer.encode(output, add_special_tokens=False)
    pieces = [tokenizer.decode([t], skip_special_tokens=False) for t in token_ids]
    prompt_ids = tokenizer.encode(GENERATION_PROMPT, add_special_tokens=False)

    began = time.perf_counter()
    for _ in range(n):
        parser = parser_cls(tokenizer, request.tools, chat_template_kwargs=kwargs)
        parser.parse(output, request, enable_auto_tools=True, model_output_token_ids=token_ids)
    full = (time.perf_counter() - began) / n

    began = time.perf_counter()
    for _ in range(n):
        parser = parser_cls(tokenizer, request.tools, chat_template_kwargs=kwargs)
        for i, (token, piece) in enumerate(zip(token_ids, pieces, strict=True)):
            parser.parse_delta(
                piece, [token], request, prompt_ids, finished=i == len(token_ids) - 1
            )
    streamed = (time.perf_counter() - began) / n
    return {"parse_full_s": full, "parse_stream_s": streamed, "output_tokens": len(token_ids)}


def summarize(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * percentile(times, 0.95),
        "mean_ms": 1000 * statistics.fmean(times),
    }


def run(n: int) -> dict[str, Any]:
    from smolserve.testkit import build_tokenizer

    root = Path(tempfile.mkdtemp(prefix="smolserve-vllm-bench-"))
    model_dir = build_tiny_model(build_tokenizer(root / "tok"), root / "models" / "tiny")
    assets = Assets(root=root, models=root / "models", adapters=root / "adapters")
    on = serve_object(ServerKey("fixed", "smollm3"))
    off = serve_object(ServerKey("fixed", "none"))
    off["spec"]["parsers"] |= {"toolCall": "none", "autoToolChoice": False}

    results: dict[str, Any] = {"n": n}
    for label, serve in (("parsers_on", on), ("parsers_off", off)):
        server = prepare_server(assets, serve, free_port(), label)
        with server:
            results[label] = {"startup_s": server.startup_s}
            for stream in (False, True):
                mode = "stream" if stream else "full"
                times = time_requests(server, label == "parsers_on", n, stream)
                results[label][mode] = summarize(times)
    forced = mx.forced_output(FORCED_MODE, FORCED_OUTPUT, GENERATION_PROMPT)
    results["in_process"] = in_process_parse_cost(model_dir, forced, n)
    for mode in ("full", "stream"):
        on, off = results["parsers_on"][mode], results["parsers_off"][mode]
        # Medians: on 2 shared cores the means carry other processes' noise.
        results[f"latency_ratio_p50_{mode}"] = on["p50_ms"] / off["p50_ms"]
        parse_ms = 1000 * results["in_process"][f"parse_{mode}_s"]
        results[f"parser_share_of_p50_{mode}"] = parse_ms / on["p50_ms"]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="forced requests per server and mode")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(args.n)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
