"""Stand-ins for other projects' CRDs (KEDA's ScaledObject, the InferencePool), so that the
emulator serves those APIs (it registers CRDs created through the API, and validates no schema).

Only the names, the scope and the status subresource, as the real CRDs have them. The tests
that validate objects against the projects' real schemas read the unmodified CRDs with
``third_party_crd`` (they live outside the repository; ``tests/manifests/test_fleet.py``).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from smolserve.kinds import OPTIONAL_CHILDREN, Resource


def stand_in_crd(resource: Resource) -> dict[str, Any]:
    """A CRD that makes the API server serve ``resource``, with any content."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{resource.group}"},
        "spec": {
            "group": resource.group,
            "scope": "Namespaced",
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.kind.lower(),
            },
            "versions": [
                {
                    "name": resource.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def serve_optional_apis(api_client: Any, kinds: tuple[str, ...] | None = None) -> None:
    """Create the stand-in CRDs of the optional kinds (all, or those named)."""
    ext = kubernetes.client.ApiextensionsV1Api(api_client)
    for resource in OPTIONAL_CHILDREN:
        if kinds is None or resource.kind in kinds:
            ext.create_custom_resource_definition(stand_in_crd(resource))


# --- the projects' real CRDs, for validating what smolserve renders ---------------------------

THIRD_PARTY_ENV = "SMOLSERVE_THIRD_PARTY_CRDS"
REPO = Path(__file__).resolve().parents[2]


def third_party_crd_dir() -> Path | None:
    """Where the unmodified third-party CRDs are: ``$SMOLSERVE_THIRD_PARTY_CRDS``, else the
    first ``shared/crds/third-party`` beside the checkout or above it (they are not in the
    repository)."""
    if os.environ.get(THIRD_PARTY_ENV):
        return Path(os.environ[THIRD_PARTY_ENV])
    for parent in REPO.parents:
        candidate = parent / "shared" / "crds" / "third-party"
        if candidate.is_dir():
            return candidate
    return None


def third_party_crd(kind: str) -> dict[str, Any]:
    """The real CRD that defines ``kind``; the test is skipped, saying why, where there is none."""
    import pytest

    directory = third_party_crd_dir()
    if directory is None:
        pytest.skip(f"no third-party CRDs here (set {THIRD_PARTY_ENV} to their directory)")
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if (
                isinstance(doc, dict)
                and (doc.get("spec") or {}).get("names", {}).get("kind") == kind
            ):
                return doc
    pytest.skip(f"no CRD of kind {kind} in {directory}")


def third_party_errors(obj: dict[str, Any]) -> list[str]:
    """What the project's own CRD says about ``obj``: its defaults, schema and CEL rules as the
    API server applies them, and fields the schema does not define (the server would drop
    them silently)."""
    from openapi_schema_validator import OAS30Validator

    from crd.crdcheck import admit
    from smolserve.spec import openapi_schema

    crd = third_party_crd(obj["kind"])
    version = obj["apiVersion"].split("/")[-1]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = served["schema"]["openAPIV3Schema"]
    _, errors = admit(schema, copy.deepcopy(obj))
    closed = OAS30Validator(openapi_schema(schema, closed=True))
    return errors + [f"{list(e.absolute_path)}: {e.message}" for e in closed.iter_errors(obj)]
