"""The one factory for SmolServe objects and the operator configuration the tests share."""

from __future__ import annotations

import copy
from typing import Any

from smolserve import labels
from smolserve.manifests import OperatorConfig

# The template Job image every test's operator uses (no registry is reached: nothing pulls it).
TEST_JOB_IMAGE = "example.org/smolserve/template-job:test"
# A model on a PVC: the template Job reads the test-kit tokenizer from there, never the hub.
PVC_MODEL = {"pvc": {"claimName": "models", "path": "SmolLM3-3B"}}


def operator_config(**overrides: Any) -> OperatorConfig:
    """The operator configuration of the tests (the real plugin text, a test Job image)."""
    return OperatorConfig(**{"job_image": TEST_JOB_IMAGE, **overrides})


def smolserve(
    spec: dict[str, Any] | None = None,
    *,
    name: str = "smol",
    namespace: str | None = "default",
    uid: str | None = None,
    generation: int | None = None,
) -> dict[str, Any]:
    """A SmolServe object as a manifest (no uid) or as the API returns it (with ``uid``).

    ``spec`` is used as given (deep-copied); None leaves the spec out entirely.
    """
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if uid is not None:
        metadata["uid"] = uid
    if generation is not None:
        metadata["generation"] = generation
    obj: dict[str, Any] = {
        "apiVersion": labels.API_VERSION,
        "kind": labels.KIND,
        "metadata": metadata,
    }
    if spec is not None:
        obj["spec"] = copy.deepcopy(spec)
    return obj
