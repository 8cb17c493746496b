"""The images: Dockerfiles lint clean (hadolint), run as non-root, carry no torch, and
images/build.sh tags them with the chart's appVersion."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from smolserve.manifests.template import JOB_UID

from .helpers import CHART, ROOT, find_tool, run

DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))


def test_images_exist() -> None:
    assert {p.parent.name for p in DOCKERFILES} == {"operator", "template-job"}


@pytest.mark.tools
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint(dockerfile: Path) -> None:
    run([find_tool("hadolint"), "--failure-threshold", "info", dockerfile])


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_runs_as_non_root_without_torch(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, "the final USER must be a numeric, high uid"
    assert not re.search(r"pip install[^\n]*\btorch\b", text), "no torch in the images"


def test_template_job_uid_matches_the_builders() -> None:
    """The Job's pod sets runAsUser to the image's user; the two must agree."""
    text = (ROOT / "images" / "template-job" / "Dockerfile").read_text()
    assert re.findall(r"^USER\s+(\d+)", text, re.M)[-1] == str(JOB_UID)


def test_operator_uid_matches_the_chart() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    text = (ROOT / "images" / "operator" / "Dockerfile").read_text()
    uid = int(re.findall(r"^USER\s+(\d+)", text, re.M)[-1])
    assert values["operator"]["securityContext"]["runAsUser"] == uid
    assert values["operator"]["podSecurityContext"]["runAsUser"] == uid


def test_build_script_tags_with_app_version(tmp_path: Path) -> None:
    """images/build.sh, run with a recording stand-in for docker, builds and tags both images
    with the chart's appVersion."""
    log = tmp_path / "calls"
    fake = tmp_path / "docker"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    proc = subprocess.run(
        ["bash", str(ROOT / "images" / "build.sh"), "--push"],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "BUILDER": str(fake), "REGISTRY": "r.example/s"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    calls = log.read_text().splitlines()
    for image in ("operator", "template-job"):
        assert any(
            c.startswith("build ")
            and f"--tag r.example/s/{image}:{version}" in c
            and f"images/{image}/Dockerfile" in c
            for c in calls
        ), calls
        assert f"push r.example/s/{image}:{version}" in calls


def test_chart_values_pin_images_to_the_app_version() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for image in (values["operator"]["image"], values["templateJob"]["image"]):
        # Empty tag → the chart's appVersion (see _helpers.tpl); never "latest".
        assert image["tag"] in ("",) or re.fullmatch(r"\d+\.\d+\.\d+", image["tag"])
