"""Every pod smolserve runs meets the Pod Security Standard ``restricted``: the template Job,
the vLLM Deployment (with and without the agent sidecar, with the static-LoRA init container
and dynamic LoRA's volumes) for every example and feature combination, and the operator's own
pod from the Helm chart with each of the chart's example values files.

No exception is needed: vLLM on GPUs runs as a non-root uid with every capability dropped (the
device plugin hands the GPU over as device files, no capability or host path is involved).
"""

from __future__ import annotations

from typing import Any

import pytest

from smolserve.manifests import OperatorConfig
from support.pss import violations

from .pods import bodies, desired_objects, workloads

BODIES = dict(bodies())


def containers(obj: dict[str, Any]) -> set[str]:
    pod = obj["spec"]["template"]["spec"]
    return {c["name"] for c in pod.get("initContainers", []) + pod["containers"]}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_pod_template_meets_restricted(name: str, operator_config: OperatorConfig) -> None:
    found = workloads(desired_objects(BODIES[name], operator_config))
    assert {o["kind"] for o in found} == {"Job", "Deployment"}
    for obj in found:
        problems = [str(v) for v in violations(obj)]
        assert problems == [], f"{obj['kind']} {obj['metadata']['name']}: {problems}"


def test_the_combinations_cover_every_container_smolserve_runs(
    operator_config: OperatorConfig,
) -> None:
    seen = set()
    for body in BODIES.values():
        for obj in workloads(desired_objects(body, operator_config)):
            seen |= {(obj["kind"], c) for c in containers(obj)}
    assert seen == {
        ("Job", "publish-template"),
        ("Deployment", "vllm"),
        ("Deployment", "agent"),
        ("Deployment", "fetch-adapters"),
    }
    no_agent = workloads(desired_objects(BODIES["hub-token-no-smoke"], operator_config))
    assert {c for o in no_agent if o["kind"] == "Deployment" for c in containers(o)} == {"vllm"}


@pytest.mark.tools
def test_the_operator_pod_from_the_chart_meets_restricted(chart_objects: Any) -> None:
    for label, objects in chart_objects.items():
        found = workloads(objects)
        assert [o["kind"] for o in found] == ["Deployment"], label
        problems = [str(v) for obj in found for v in violations(obj)]
        assert problems == [], f"{label}: {problems}"
