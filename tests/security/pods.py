"""Every pod template smolserve produces, built by the same code the operator and ``render`` use
(``desired_state``), for the examples and feature combinations that change the pods."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from smolserve.manifests import OperatorConfig, ServedTemplate, desired_state, template_inputs_hash
from smolserve.spec import load_spec
from support.factories import smolserve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
WORKLOADS = ("Deployment", "Job", "StatefulSet", "DaemonSet", "ReplicaSet", "CronJob", "Pod")
TOKEN_REF = {"name": "hf-token", "key": "token"}

# Feature combinations beyond the examples: each changes which containers, init containers and
# volumes the pods have.
FEATURES: dict[str, dict[str, Any]] = {
    "hub-token-no-smoke": {  # no agent sidecar: the vLLM container alone
        "model": {"id": "HuggingFaceTB/SmolLM3-3B", "tokenSecretRef": TOKEN_REF},
        "rollout": {"smoke": False},
    },
    "static-lora": {  # the fetch-adapters init container, a pvc:// adapter volume
        "model": {"id": "HuggingFaceTB/SmolLM3-3B", "tokenSecretRef": TOKEN_REF},
        "lora": {
            "mode": "static",
            "adapters": [
                {"name": "sql", "source": "hf://org/sql-lora@main"},
                {"name": "docs", "source": "pvc://adapters/docs"},
            ],
        },
    },
    "dynamic-lora-no-smoke": {  # the agent runs for the adapters alone
        "model": {"id": "HuggingFaceTB/SmolLM3-3B", "tokenSecretRef": TOKEN_REF},
        "rollout": {"smoke": False},
        "lora": {
            "mode": "dynamic",
            "maxLoras": 2,
            "adapters": [
                {"name": "sql", "source": "hf://org/sql-lora@main"},
                {"name": "docs", "source": "pvc://adapters/docs"},
            ],
        },
    },
    "pvc-model-configmap-template": {
        "model": {"pvc": {"claimName": "models", "path": "SmolLM3-3B"}},
        "template": {"source": "configMap", "configMapRef": {"name": "tpl", "key": "t.jinja"}},
        "resources": {"gpus": 2},
    },
    "inline-template": {
        "template": {"source": "inline", "inline": "{{ messages[0].content }}"},
        "engine": {"env": [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}]},
    },
}


def example_bodies() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "SmolServe":
                yield f"{path.relative_to(ROOT)}:{doc['metadata']['name']}", doc


def bodies() -> Iterator[tuple[str, dict[str, Any]]]:
    yield from example_bodies()
    for name, spec in FEATURES.items():
        yield name, smolserve(copy.deepcopy(spec), name=name, namespace="ai", uid="u-1")


def desired_objects(body: dict[str, Any], config: OperatorConfig) -> list[dict[str, Any]]:
    """Everything the operator wants for ``body`` while it publishes a template and serves one."""
    spec = load_spec(body)
    state = desired_state(
        spec,
        config,
        inputs_hash=template_inputs_hash(spec, config),
        template=ServedTemplate.for_text(spec.name, "0" * 64),
        publishing=True,
    )
    return state.objects()


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") in WORKLOADS]
