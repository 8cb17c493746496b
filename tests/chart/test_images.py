"""The images' recipe: one Dockerfile with a target per image on a shared base stage, linted
clean (hadolint), non-root, no torch, the base image a build argument; images/build.sh builds
and tags both with the one version, with docker, podman or buildah. (tests/images builds and
runs them for real.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

import smolserve
from smolserve.manifests.template import JOB_UID

from .helpers import CHART, ROOT, find_tool, run

DOCKERFILE = ROOT / "images" / "Dockerfile"
TARGETS = ("operator", "template-job")
UPSTREAM_BASE = re.compile(r"python:\d+\.\d+\.\d+-slim-bookworm")  # pinned to a patch release


def stages() -> dict[str, str]:
    """Each stage's text by its name (``FROM ... AS name``)."""
    parts = re.split(r"^(?=FROM )", DOCKERFILE.read_text(), flags=re.M)
    named = {}
    for part in parts[1:]:
        match = re.match(r"FROM \S+ AS (\S+)", part)
        assert match, f"unnamed stage: {part.splitlines()[0]}"
        named[match.group(1)] = part
    return named


def final_uid(stage: str) -> int:
    users = re.findall(r"^USER\s+(\S+)", stage, re.M)
    assert users, "no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "the final USER must be numeric (runAsNonRoot checks it)"
    return int(uid)


def test_one_dockerfile_with_a_target_per_image() -> None:
    assert [p.relative_to(ROOT) for p in ROOT.glob("images/**/Dockerfile*")] == [
        Path("images/Dockerfile")
    ]
    named = stages()
    assert set(TARGETS) <= set(named)
    for target in TARGETS:
        assert named[target].startswith("FROM base AS"), "both images share the base stage"
    build_steps = [n for n, s in named.items() if re.search(r"pip wheel", s)]
    assert build_steps == ["wheels"], "the wheels are built once, for both images"


def test_base_is_a_build_argument() -> None:
    text = DOCKERFILE.read_text()
    (default,) = re.findall(r"^ARG BASE=(\S+)$", text, re.M)
    assert UPSTREAM_BASE.fullmatch(default), default
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms[0] == "${BASE}"
    assert set(froms[1:]) <= set(stages()), "every other stage starts from a stage of this file"


@pytest.mark.tools
def test_hadolint() -> None:
    run([find_tool("hadolint"), "--failure-threshold", "info", DOCKERFILE])


@pytest.mark.parametrize("target", TARGETS)
def test_runs_as_non_root_without_torch(target: str) -> None:
    stage = stages()[target]
    assert final_uid(stage) >= 10000, "the final USER must be a high uid"
    assert not re.search(r"pip (install|wheel)[^\n]*\btorch\b", DOCKERFILE.read_text())


def test_template_job_uid_matches_the_builders() -> None:
    """The Job's pod sets runAsUser to the image's user; the two must agree."""
    assert final_uid(stages()["template-job"]) == JOB_UID


def test_operator_uid_matches_the_chart() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = final_uid(stages()["operator"])
    assert values["operator"]["securityContext"]["runAsUser"] == uid
    assert values["operator"]["podSecurityContext"]["runAsUser"] == uid


def test_no_version_literal_in_the_recipe() -> None:
    """build.sh reads smolserve.__version__; the Dockerfile carries no version of its own."""
    assert smolserve.__version__ not in DOCKERFILE.read_text()
    assert smolserve.__version__ not in (ROOT / "images" / "build.sh").read_text()


def build(tmp_path: Path, builder: str, *args: str, **env: str) -> list[str]:
    """Run images/build.sh with a recording stand-in named ``builder``; the calls it made."""
    log = tmp_path / "calls"
    fake = tmp_path / builder
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    proc = subprocess.run(
        ["bash", str(ROOT / "images" / "build.sh"), *args],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "BUILDER": builder, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines()


@pytest.mark.parametrize("builder", ["docker", "podman", "buildah"])
def test_build_script_tags_with_the_version(tmp_path: Path, builder: str) -> None:
    """Each builder gets the same `build` command: both targets of the one Dockerfile, tagged
    and labelled with smolserve.__version__, then pushed with --push."""
    calls = build(tmp_path, builder, "--push", REGISTRY="r.example/s")
    version = smolserve.__version__
    builds = [c for c in calls if c.startswith("build ")]
    assert len(builds) == 2, calls
    for target, call in zip(TARGETS, builds, strict=True):
        assert "--file images/Dockerfile" in call
        assert f"--target {target} --tag r.example/s/{target}:{version}" in call
        assert f"--label org.opencontainers.image.version={version}" in call
        assert "BASE=" not in call, "without BASE the Dockerfile's pinned default applies"
        assert f"push r.example/s/{target}:{version}" in calls


def test_build_script_passes_base_and_flags(tmp_path: Path) -> None:
    flags = "--isolation chroot --network host --build-arg PIP_CERT=/etc/ssl/certs/ca.crt"
    calls = build(tmp_path, "buildah", BASE="localhost/base:bookworm", BUILD_FLAGS=flags)
    builds = [c for c in calls if c.startswith("build ")]
    assert len(builds) == 2 and not [c for c in calls if c.startswith("push ")]
    for call in builds:
        assert "--build-arg BASE=localhost/base:bookworm" in call
        assert flags in call
    assert [c for c in calls if c.startswith("images ")], "it reports each image's size"


def test_build_script_refuses_a_missing_builder(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", str(ROOT / "images" / "build.sh")],
        env={"PATH": "/usr/bin:/bin", "BUILDER": "no-such-builder"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "images/build.sh: 'no-such-builder' not found (set BUILDER to docker, podman or buildah)"
    )


def test_chart_values_pin_images_to_the_app_version() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for image in (values["operator"]["image"], values["templateJob"]["image"]):
        # Empty tag → the chart's appVersion (see _helpers.tpl); never "latest".
        assert image["tag"] in ("",) or re.fullmatch(r"\d+\.\d+\.\d+", image["tag"])
