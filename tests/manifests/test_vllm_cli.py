"""The Deployment's vLLM arguments, parsed by the installed vLLM's own argument parser.

The same vLLM version runs in the CPU test tier and (as ``vllm/vllm-openai``) in the cluster,
so a flag that this parser rejects or reads differently would fail there too. Importing vLLM
takes several seconds; one module-scoped parser serves every case.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from smolserve.manifests import vllm_args
from smolserve.manifests.common import TEMPLATE_PATH
from smolserve.spec import load_spec

# Slow tier: importing vLLM (and torch) takes ~15 s of CPU; no server is started.
pytestmark = pytest.mark.vllm

FULL = {
    "model": {"revision": "abc123"},
    "parsers": {"reasoning": "smollm3"},
    "thinking": {"default": "noThink"},
    "lora": {
        "adapters": [
            {"name": "sql", "source": "hf://org/sql@v1"},
            {"name": "local", "source": "pvc://c/p"},
        ],
        "maxRank": 64,
        "maxLoras": 2,
        "mode": "static",
    },
    "resources": {"gpus": 2},
    "engine": {"extraArgs": ["--enforce-eager", "--max-num-seqs=8"], "dtype": "bfloat16"},
}


@pytest.fixture(scope="module")
def parse():
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser())

    def run(args: list[str], template: Path):
        parsed = parser.parse_args([str(template) if a == TEMPLATE_PATH else a for a in args])
        validate_parsed_serve_args(parsed)
        return parsed

    return run


@pytest.fixture
def template(tmp_path: Path) -> Path:
    path = tmp_path / "chat_template.jinja"
    path.write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    return path


def test_full_arguments_parse_as_intended(parse, template):
    args = parse(vllm_args(load_spec({"metadata": {"name": "smol"}, "spec": FULL})), template)
    assert args.model == "HuggingFaceTB/SmolLM3-3B" and args.revision == "abc123"
    assert args.served_model_name == ["smollm3"]
    assert (args.host, args.port) == ("0.0.0.0", 8000)
    assert args.chat_template == str(template)
    assert args.chat_template_content_format == "string"
    assert args.enable_auto_tool_choice and args.tool_call_parser == "hermes"
    assert args.reasoning_parser == "smollm3"
    assert args.reasoning_parser_plugin == "/etc/smolserve/parsers/smollm3_reasoning_parser.py"
    assert args.default_chat_template_kwargs == {"enable_thinking": False}
    assert args.enable_lora and args.max_lora_rank == 64 and args.max_loras == 2
    assert [(m.name, m.path, m.base_model_name) for m in args.lora_modules] == [
        ("local", "/adapters/local", "smollm3"),
        ("sql", "/adapters/sql", "smollm3"),
    ]
    assert args.max_model_len == 8192 and args.gpu_memory_utilization == 0.9
    assert args.dtype == "bfloat16" and args.tensor_parallel_size == 2
    assert args.enforce_eager and args.max_num_seqs == 8


def test_default_arguments_parse(parse, template):
    args = parse(vllm_args(load_spec({"metadata": {"name": "smol"}})), template)
    assert args.reasoning_parser == "smollm3"
    assert not args.enable_lora and args.default_chat_template_kwargs is None


def test_dynamic_lora_arguments_parse(parse, template):
    """Dynamic mode: LoRA on, no adapter at start, the guard middleware by import path."""
    spec = {**FULL, "lora": {**FULL["lora"], "mode": "dynamic"}}
    args = parse(vllm_args(load_spec({"metadata": {"name": "smol"}, "spec": spec})), template)
    assert args.enable_lora and args.max_lora_rank == 64 and args.max_loras == 2
    assert args.lora_modules is None
    assert args.middleware == ["adapter_guard.AdapterGuard"]
