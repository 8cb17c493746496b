"""Security scan (checkov) of every manifest the project renders: the chart with each values
file, the operator's children for each example (`smolserve render -f`), and the GitOps
kustomization; and of the images' Dockerfile.

Offline, checkov's Kubernetes checks carry no severity, so every failed check blocks unless
.ci/checkov-skip.yaml lists it, for the resources it names, with a reason. A skip entry that no
longer matches anything fails too, so the list cannot rot.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import (
    EXAMPLES,
    PROMETHEUS_API,
    ROOT,
    find_tool,
    load_all,
    run,
    smolserve_cli,
    values_files,
)

pytestmark = pytest.mark.tools

SKIP_FILE = ROOT / ".ci" / "checkov-skip.yaml"
SCAN_NAMESPACE = "smol"  # the operator creates a SmolServe's children in the SmolServe's namespace


def load_skips() -> list[dict[str, Any]]:
    skips = yaml.safe_load(SKIP_FILE.read_text()) or []
    for entry in skips:
        assert set(entry) == {"check", "resources", "reason"}, entry
        assert entry["reason"].strip(), f"{entry['check']} has no reason"
    return skips


def write_manifests(out: Path, helm_template: Any, tmp: Path) -> None:
    """Everything the project would apply to a cluster, one file per source."""
    for values in [None, *values_files()]:
        objs = helm_template(values, api_versions=[PROMETHEUS_API])
        name = values.stem if values else "defaults"
        (out / f"chart-{name}.yaml").write_text(yaml.safe_dump_all(objs))
    for example in sorted(EXAMPLES.glob("*.yaml")):
        docs = load_all(example.read_text())
        for doc in docs:
            doc.setdefault("metadata", {})["namespace"] = SCAN_NAMESPACE
        placed = tmp / example.name
        placed.write_text(yaml.safe_dump_all(docs))
        (out / f"example-{example.stem}.yaml").write_text(yaml.safe_dump_all(docs))
        (out / f"render-{example.stem}.yaml").write_text(smolserve_cli("render", "-f", placed))
    gitops = run([find_tool("kubectl"), "kustomize", EXAMPLES / "gitops" / "smol"])
    (out / "gitops.yaml").write_text(gitops)
    (out / "images").mkdir()
    shutil.copy(ROOT / "images" / "Dockerfile", out / "images" / "Dockerfile")


def failed_checks(directory: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [
            find_tool("checkov"),
            "--directory", directory,
            "--framework", "kubernetes", "dockerfile",
            "--output", "json",
            "--quiet",
            "--compact",
            "--skip-download",
        ],
        capture_output=True, text=True, check=False, cwd=directory,
    )  # fmt: skip
    if proc.returncode not in (0, 1):  # 1: some check failed
        pytest.fail(f"checkov exited {proc.returncode}: {proc.stderr[-2000:]}")
    reports = json.loads(proc.stdout)
    if isinstance(reports, dict):
        reports = [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        assert report["summary"]["resource_count"] > 0, report["summary"]
    return [c for r in reports for c in r["results"]["failed_checks"]]


def test_no_unlisted_failed_checks(helm_template: Any, tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    out.mkdir()
    write_manifests(out, helm_template, tmp_path)
    skips = load_skips()
    used: set[int] = set()
    blocking = []
    for check in failed_checks(out):
        matches = [
            i
            for i, s in enumerate(skips)
            if s["check"] == check["check_id"]
            and any(fnmatch.fnmatchcase(check["resource"], p) for p in s["resources"])
        ]
        used.update(matches)
        if not matches:
            severity = check.get("severity") or "no severity offline"
            blocking.append(
                f"{check['check_id']} ({severity}) {check['resource']} in "
                f"{Path(check['file_path']).name}: {check['check_name']}"
            )
    assert not blocking, "checkov failed checks not in .ci/checkov-skip.yaml:\n" + "\n".join(
        sorted(set(blocking))
    )
    stale = [s["check"] for i, s in enumerate(skips) if i not in used]
    assert not stale, f"skip entries that match nothing any more (remove them): {stale}"


def test_skip_file_is_well_formed() -> None:
    skips = load_skips()
    assert len({(s["check"], tuple(s["resources"])) for s in skips}) == len(skips)
    for entry in skips:
        assert re.fullmatch(r"CKV2?_(K8S|DOCKER)_\d+", entry["check"]), entry["check"]
        assert entry["resources"] and all(isinstance(r, str) and r for r in entry["resources"])
