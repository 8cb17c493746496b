"""Shared helpers of the chart, image and example gates.

The tools (helm 4, helm 3, kubectl, checkov, hadolint) are installed into .tools/bin by
`.ci/setup` → `.ci/install-tools`. A test that needs one skips only outside CI when it is
missing; in CI (env CI set) a missing tool is a failure, so a broken install cannot pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = ROOT / ".tools" / "bin"
CHART = ROOT / "charts" / "smol"
EXAMPLES = ROOT / "examples"
RELEASE = "smol"
RELEASE_NAMESPACE = "smolserve-system"
# Kubernetes versions every manifest is validated for: the oldest supported and the newest.
KUBE_VERSIONS = ("1.30", "1.37")
PROMETHEUS_API = "monitoring.coreos.com/v1"


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def find_tool(name: str) -> Path:
    """The tool's path in .tools/bin; skip outside CI when it is missing, fail in CI."""
    path = TOOLS_BIN / name
    if path.exists() and os.access(path, os.X_OK):
        return path
    message = f"{name} is not installed in {TOOLS_BIN} (run bash .ci/setup)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def run(cmd: Sequence[str | Path], *, env: dict[str, str] | None = None, **kw: Any) -> str:
    """Run a command; on failure, fail the test with its stderr."""
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=env, check=False, **kw
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
        )
    return proc.stdout


HELMS = ("helm", "helm3")  # helm 4 and helm 3: the chart must work with both


def values_files() -> list[Path]:
    """Every example values file for the chart (chart-testing's ci/*-values.yaml)."""
    return sorted((CHART / "ci").glob("*-values.yaml"))


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def smolserve_cli(*args: str | Path) -> str:
    """The real `smolserve` command line of this checkout."""
    return run([sys.executable, "-m", "smolserve.cli", *args], cwd=ROOT)


def obj_id(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {where}{meta.get('name')}"


def kube_validate(objects: Sequence[dict[str, Any]], version: str) -> tuple[list[str], set[str]]:
    """Validate built-in kinds strictly (unknown fields refused) against Kubernetes ``version``.

    Returns (errors, custom kinds that have no built-in schema and were left to the caller).
    """
    import kubernetes_validate as kv

    errors: list[str] = []
    custom: set[str] = set()
    for obj in objects:
        try:
            kv.validate(obj, version, strict=True)
        except kv.SchemaNotFoundError:
            custom.add(f"{obj.get('apiVersion')}/{obj.get('kind')}")
        except kv.ValidationError as exc:
            errors.append(f"{obj_id(obj)} (k8s {version}): {str(exc).splitlines()[0]}")
    return errors, custom


def crd_schema_validator(crd: dict[str, Any], version: str | None = None) -> Any:
    """An OpenAPI 3.0 validator for objects of ``crd`` (its storage version by default)."""
    from openapi_schema_validator import OAS30Validator

    versions = crd["spec"]["versions"]
    chosen = next(v for v in versions if (v["name"] == version if version else v.get("storage")))
    return OAS30Validator(chosen["schema"]["openAPIV3Schema"])


def crd_errors(validator: Any, obj: dict[str, Any]) -> list[str]:
    return [
        f"{obj_id(obj)}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(obj)
    ]


def read_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return load_all(path.read_text(encoding="utf-8"))
