"""A real vLLM OpenAI server on the CPU, started with the operator's own Deployment arguments.

Shared by the `vllm` test tier and `benchmarks/vllm_bench.py`. It builds a tiny random-weight
SmolLM3ForCausalLM next to the test-kit tokenizer, turns a Deployment built by
`smolserve.manifests.build_deployment` into a local command line (mount prefixes mapped to local
directories, plus a few CPU-only test flags), and runs one server at a time, killed by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Mount prefixes the operator's Deployment uses (docs/architecture.md).
TEMPLATE_MOUNT = "/etc/smolserve/template/"
PARSERS_MOUNT = "/etc/smolserve/parsers/"
MODELS_MOUNT = "/models/"
ADAPTERS_MOUNT = "/adapters/"
GUARD_MOUNT = "/etc/smolserve/guard/"  # dynamic LoRA: the adapter guard middleware
AGENT_RUN_MOUNT = "/run/smolserve/"  # dynamic LoRA: the agent's token for the guard

# Flags only a CPU test run needs; they come after the operator's args, so they win. The engine
# runs in the API server's process (with SERVER_ENV's VLLM_ENABLE_V1_MULTIPROCESSING=0): two fewer
# Python processes to start, which saves ~15 s per server on 2 cores; parsing is unaffected.
CPU_FLAGS = [
    "--distributed-executor-backend",
    "uni",
    "--enforce-eager",
    "--dtype",
    "bfloat16",
    "--max-model-len",
    "2048",
    "--max-num-seqs",
    "4",
]
# Structured outputs inside reasoning, so the matrix can force reasoning text. It changes what
# every reasoning request with structured outputs gets, so production never runs with it, and
# neither do the smoke battery's servers (test_smoke.py).
FORCE_IN_REASONING = ["--structured-outputs-config", '{"enable_in_reasoning": true}']
TEST_ONLY_FLAGS = [*CPU_FLAGS, *FORCE_IN_REASONING]

SERVER_ENV = {
    "VLLM_HOST_IP": "127.0.0.1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_LOGGING_LEVEL": "WARNING",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}

# SmolLM3's special ids (docs: shared reference, section 1).
BOS_ID, EOS_ID, PAD_ID = 128000, 128012, 128004


def build_tiny_model(tokenizer_dir: Path, out_dir: Path, *, seed: int = 0) -> Path:
    """Save a random-weight SmolLM3ForCausalLM (~40 MB) with the tokenizer files beside it.

    head_dim is 32 (hidden 128 / 4 heads): vLLM's CPU attention dies on the first request below
    that, although /health still answers.
    """
    import torch
    from transformers import SmolLM3Config, SmolLM3ForCausalLM

    torch.manual_seed(seed)
    config = SmolLM3Config(
        vocab_size=128256,
        hidden_size=128,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        no_rope_layers=[1, 0],
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
        tie_word_embeddings=True,
    )
    model = SmolLM3ForCausalLM(config).to(torch.bfloat16)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    for item in tokenizer_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, out_dir / item.name)
    return out_dir


def build_tiny_adapter(model_dir: Path, out_dir: Path, *, rank: int = 8, seed: int = 1) -> Path:
    """Save a peft LoRA adapter (rank `rank`) for the tiny model, with non-zero B weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import SmolLM3ForCausalLM

    torch.manual_seed(seed)
    base = SmolLM3ForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    lora = get_peft_model(
        base,
        LoraConfig(
            r=rank, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
        ),
    )
    lora.save_pretrained(out_dir)
    return out_dir


def vllm_container(deployment: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Deployment's vLLM container (the one running the OpenAI api_server module)."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    for container in containers:
        if "vllm.entrypoints.openai.api_server" in container.get("command", []):
            return container
    raise LookupError("the Deployment has no vLLM api_server container")


def localize(args: Sequence[str], mounts: Mapping[str, Path]) -> list[str]:
    """Replace each mount prefix in `args` (also inside JSON values) with a local directory."""
    out = []
    for arg in args:
        for prefix, local in mounts.items():
            arg = arg.replace(prefix, str(local).rstrip("/") + "/")
        out.append(arg)
    return out


def server_command(
    deployment: Mapping[str, Any],
    mounts: Mapping[str, Path],
    port: int,
    extra_flags: Sequence[str] = (),
    *,
    force_in_reasoning: bool = True,
    host: str = "127.0.0.1",
) -> list[str]:
    """The local command line for the Deployment's vLLM container: its own module and args,
    this interpreter, localized mount paths, then the test-only flags (without
    `FORCE_IN_REASONING` when `force_in_reasoning` is false) and `extra_flags`. `host` 0.0.0.0
    also listens on this machine's other addresses (the Service's path)."""
    container = vllm_container(deployment)
    command = list(container["command"])
    if command[0].startswith("python"):
        command[0] = sys.executable
    return [
        *command,
        *localize(container.get("args", []), mounts),
        *(TEST_ONLY_FLAGS if force_in_reasoning else CPU_FLAGS),
        *extra_flags,
        "--host",
        host,
        "--port",
        str(port),
    ]


def server_env(deployment: Mapping[str, Any], mounts: Mapping[str, Path]) -> dict[str, str]:
    """The vLLM container's literal environment, mount paths localized (HOME and HF_HOME stay
    this machine's; values from Secrets or fields do not exist here)."""
    env = {}
    for var in vllm_container(deployment).get("env") or []:
        if "value" in var and var["name"] not in ("HOME", "HF_HOME"):
            value = var["value"]
            exact = mounts.get(value + "/")  # a mount point itself, e.g. PYTHONPATH
            env[var["name"]] = str(exact) if exact else localize([value], mounts)[0]
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, body: Any | None = None, timeout: float = 60) -> Any:
    """GET (body None) or POST JSON; returns the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


class ServerError(RuntimeError):
    """The server did not come up, or died."""


@dataclass
class VllmServer:
    """One vLLM server process. Use as a context manager; it is always killed by its pid."""

    command: list[str]
    port: int
    log_path: Path
    model_name: str
    env: dict[str, str] = field(default_factory=dict)
    startup_s: float | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> VllmServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 300) -> None:
        env = {**os.environ, **SERVER_ENV, **self.env}
        began = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # A new session, so the engine-core child can be stopped with the server's pid.
            self._proc = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            self._wait_healthy(began + timeout)
            # /health can answer while the engine is broken: one real request proves it.
            http_json(
                f"{self.base_url}/v1/completions",
                {"model": self.model_name, "prompt": "hi", "max_tokens": 1},
            )
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began

    def _wait_healthy(self, deadline: float) -> None:
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServerError(f"vLLM exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise ServerError(f"vLLM not healthy in time:\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
