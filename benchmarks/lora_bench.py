"""Dynamic LoRA benchmark: a spec change → the adapter answering on every pod, against the static
mode's pod restart, side by side in one run (CPU vLLM, tiny random SmolLM3).

The dynamic side runs the whole chain of tests/vllm/vlora.py: the emulator, the real operator,
and for each of ``--pods`` pods a real vLLM server (from the operator's Deployment) and a real
agent. Per round, one adapter is added to the spec and then removed again; measured from the
spec write to

* ``config``: the agent ConfigMap holding the new set (the operator's share),
* ``answering``: the adapter answering a request on every pod (polled every 20 ms),
* ``status``: the SmolServe's ``status.adapters`` saying ``Ready`` on every pod,
* ``removed``: after the removal, the adapter gone from every pod's ``/v1/models``.

``pvc://`` rounds need no download; the ``hf://`` round downloads from a hub cache laid out in
each pod's hub volume (no hub is reachable here), so its download is a cache lookup.

The static side switches the spec to ``mode: static`` with the same adapter and takes the
Deployment the operator writes; a rolling update (``maxSurge: 1``, ``maxUnavailable: 0``) replaces
the pods one at a time, each a new vLLM process with ``--lora-modules``, so the pods are restarted
one after another, each timed from its process start to the adapter answering; the rollout's
time is their sum (scheduling, image pull and the init container's download come on top on a
real cluster; the model load is minutes there, not seconds).

Usage: flock /tmp/smolserve-vllm.lock .venv/bin/python benchmarks/lora_bench.py [--pods 2]
[--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "tests"), str(ROOT / "tests" / "vllm")]

from vlora import SERVED, LoraStack, answers, serve_spec  # noqa: E402
from vstack import (  # noqa: E402
    ADAPTERS_MOUNT,
    MODELS_MOUNT,
    PARSERS_MOUNT,
    TEMPLATE_MOUNT,
    VllmServer,
    build_tiny_adapter,
    build_tiny_model,
    free_port,
    server_command,
)

from smolserve.agent.report import agent_config_name, read_config  # noqa: E402

POLL = 0.02
BASE = {"name": "base", "source": "pvc://adapters/base"}


def wait(probe, timeout: float = 120.0, what: str = "") -> float:
    """Poll until ``probe()`` is truthy; returns the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(POLL)
    return time.monotonic()


def dynamic_round(stack: LoraStack, adapter: dict[str, str]) -> dict[str, float]:
    pods = list(stack.pods.values())
    name = adapter["name"]

    def configured() -> bool:
        config = read_config(stack.configmap(agent_config_name("smol")))
        return config.lora is not None and name in {a.name for a in config.lora.adapters}

    def ready_everywhere() -> bool:
        found = stack.adapters_status().get(name) or {}
        return found.get("state") == "Ready" and found.get("pods") == f"{len(pods)}/{len(pods)}"

    pending = set(range(len(pods)))
    per_pod: dict[int, float] = {}

    def answering() -> bool:
        for i in list(pending):
            if pods[i].answers(name):
                pending.discard(i)
                per_pod[i] = time.monotonic()
        return not pending

    start = stack.patch_lora([BASE, adapter])
    config_at = wait(configured, what="the agent config")
    answering_at = wait(answering, what=f"{name} answering on every pod")
    status_at = wait(ready_everywhere, what=f"status: {name} Ready on every pod")
    removed_start = stack.patch_lora([BASE])
    removed_at = wait(
        lambda: all(name not in p.models() for p in pods), what=f"{name} unloaded everywhere"
    )
    return {
        "config_s": config_at - start,
        "answering_per_pod_s": [per_pod[i] - start for i in sorted(per_pod)],
        "answering_s": answering_at - start,
        "status_s": status_at - start,
        "removed_s": removed_at - removed_start,
    }


def static_restarts(stack: LoraStack, adapter: dict[str, str], pods: int, work: Path) -> list:
    """The operator's static Deployment for the same change; its pods restarted one by one."""
    stack.custom.patch_namespaced_custom_object(
        "smolserve.dev",
        "v1alpha1",
        "default",
        "smolserves",
        "smol",
        {"spec": {"lora": {"adapters": [BASE, adapter], "mode": "static"}}},
        _content_type="application/merge-patch+json",
    )

    def static_deployment() -> dict[str, Any] | None:
        deployment = stack.deployment()
        containers = (deployment or {}).get("spec", {}).get("template", {}).get("spec", {})
        args = next(
            (c["args"] for c in containers.get("containers", []) if c["name"] == "vllm"), []
        )
        return deployment if "--lora-modules" in args else None

    wait(static_deployment, what="the static Deployment")
    deployment = static_deployment()
    assert deployment is not None
    first = next(iter(stack.pods.values()))
    # The static pod's /adapters: one directory per adapter (the init container's links and the
    # pvc subPath mounts); the template and parser ConfigMaps as the dynamic pods had them.
    adapters = work / "static-adapters"
    adapters.mkdir(parents=True, exist_ok=True)
    for a in (BASE, adapter):
        link = adapters / a["name"]
        if not link.exists():
            link.symlink_to(stack.claim / a["source"].removeprefix("pvc://adapters/"))
    mounts = {
        TEMPLATE_MOUNT: first.root / "template",
        PARSERS_MOUNT: first.root / "parsers",
        MODELS_MOUNT: stack.assets_models,
        ADAPTERS_MOUNT: adapters,
    }
    times = []
    for i in range(pods):
        port = free_port()
        server = VllmServer(
            command=server_command(deployment, mounts, port),
            port=port,
            log_path=work / f"static-{i}.log",
            model_name=SERVED,
        )
        began = time.monotonic()
        with server:
            answered = wait(
                lambda url=server.base_url: answers(url, adapter["name"]), what="static adapter"
            )
        times.append(answered - began)
    return times


def run(pods: int, rounds: int) -> dict[str, Any]:
    from smolserve.testkit import build_tokenizer

    work = Path(tempfile.mkdtemp(prefix="smolserve-lora-bench-"))
    models = work / "models"
    tiny = build_tiny_model(build_tokenizer(work / "tok"), models / "tiny")
    claim = work / "claim"
    build_tiny_adapter(tiny, claim / "base", seed=1)
    for i in range(rounds):
        build_tiny_adapter(tiny, claim / f"round-{i}", seed=10 + i)
    hub_adapter = build_tiny_adapter(tiny, work / "hub-source", seed=99)
    stack = LoraStack(
        assets_models=models,
        claim=claim,
        workdir=work / "stack",
        spec=serve_spec([BASE], maxLoras=4) | {"replicas": pods},
        hub_seeds=[("org/bench-lora", "v1", hub_adapter, "1")],
    )
    results: dict[str, Any] = {"pods": pods, "rounds": rounds, "load_before": os.getloadavg()}
    with stack:
        began = time.monotonic()
        stack.start_pods(pods)
        results["pods_ready_s"] = time.monotonic() - began
        pvc = [
            dynamic_round(stack, {"name": f"round-{i}", "source": f"pvc://adapters/round-{i}"})
            for i in range(rounds)
        ]
        hf = dynamic_round(stack, {"name": "hub", "source": "hf://org/bench-lora@v1"})
        results["dynamic_pvc"] = {
            key: {
                "median": statistics.median(r[key] for r in pvc),
                "max": max(r[key] for r in pvc),
            }
            for key in pvc[0]
            if key.endswith("_s")
        }
        results["dynamic_pvc_rounds"] = pvc
        results["dynamic_hf"] = hf
        for pod in stack.pods.values():  # free the CPU and memory for the static restarts
            stack._stop_agent(pod)
            pod.vllm.stop()
        restarts = static_restarts(
            stack, {"name": "round-0", "source": "pvc://adapters/round-0"}, pods, work
        )
        results["static_restart_per_pod_s"] = restarts
        results["static_rollout_s"] = sum(restarts)
    results["load_after"] = os.getloadavg()
    results["ratio_static_to_dynamic"] = (
        results["static_rollout_s"] / results["dynamic_pvc"]["answering_s"]["median"]
    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2, help="vLLM pods (default: 2)")
    parser.add_argument("--rounds", type=int, default=3, help="pvc:// adapters added (default: 3)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(args.pods, args.rounds)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
