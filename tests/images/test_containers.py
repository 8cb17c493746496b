"""The images, built and run (marker ``images``): buildah builds both from images/Dockerfile on a
locally made Debian base, podman runs them as their pods would run them.

The operator image runs `smolserve operator` with the chart's arguments and security context
against the emulator (in its own process, reached over the host network) and reconciles one
SmolServe; the template-job image runs the Job the operator created (its command, arguments,
environment and security context) with the test-kit tokenizer mounted where the models PVC would
be, and publishes the template ConfigMap; the operator then creates the Deployment. Outside CI
the tier skips where podman, buildah, runc or debootstrap are missing; in CI that fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import smolserve
from chart.helpers import CHART, RELEASE, RELEASE_NAMESPACE, find_tool, load_all
from smolserve.manifests.template import JOB_UID

from . import containers
from .containers import PODMAN, RUN, ULIMITS, cluster_flags, image, pod_flags
from .roles import forbidden_imports
from .scenario import NAMESPACE, emulator_process, free_port, run_one_serve, wait_healthy

pytestmark = pytest.mark.images

TERMINATION_LOG = "/dev/termination-log"


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    containers.require_tools()
    seconds = containers.build_images()
    print(f"\nimages: base {seconds['base']:.0f} s, build {seconds['build']:.0f} s")
    return {target: image(target) for target in ("operator", "template-job")}


def in_image(ref: str, *args: str, entrypoint: str = "python3") -> subprocess.CompletedProcess:
    return containers.run(*RUN, "--read-only", "--entrypoint", entrypoint, ref, *args, check=False)


@pytest.mark.parametrize(
    ("target", "extra", "present", "uid"),
    [("operator", "operator", "kopf", 10001), ("template-job", "job", "transformers", JOB_UID)],
)
def test_image_carries_its_role(
    images: dict[str, str], target: str, extra: str, present: str, uid: int
) -> None:
    ref = images[target]
    inspect = containers.run(*PODMAN, "image", "inspect", "--format", "{{json .Config}}", ref)
    config = json.loads(inspect.stdout)
    assert config["User"] == f"{uid}:{uid}"
    assert config["Labels"]["org.opencontainers.image.version"] == smolserve.__version__
    version = in_image(ref, "--version", entrypoint="smolserve")
    assert version.stdout.strip() == f"smolserve {smolserve.__version__}"
    absent = sorted(forbidden_imports(extra))
    probe = (
        "import importlib.util as u; "
        f"print([m for m in {absent!r} if u.find_spec(m)], bool(u.find_spec({present!r})))"
    )
    result = in_image(ref, "-c", probe)
    assert result.stdout.strip() == "[] True", result.stdout + result.stderr


def test_template_job_image_has_no_torch(images: dict[str, str]) -> None:
    result = in_image(images["template-job"], "-c", "import torch")
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'torch'" in result.stderr


@pytest.mark.parametrize(
    ("target", "args", "missing", "extra"),
    [
        (
            "operator",
            ["template", "generate", "--tokenizer", "/x", "--out", "/tmp/t"],
            "transformers",
            "template",
        ),
        ("template-job", ["operator", "--standalone"], "kopf", "operator"),
    ],
)
def test_the_other_role_is_one_clear_line(
    images: dict[str, str], target: str, args: list[str], missing: str, extra: str
) -> None:
    result = in_image(images[target], *args, entrypoint="smolserve")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"smolserve: error: 'smolserve {args[0]}' needs {missing}, which is not installed: "
        f"pip install 'smolserve[{extra}]'"
    ]


def chart_operator_pod(tmp_path: Path) -> dict[str, Any]:
    """The operator's pod spec as the chart renders it (standalone: no peering objects)."""
    env = {**os.environ, "HOME": str(tmp_path / "helm-home")}
    values = CHART / "ci" / "standalone-values.yaml"
    cmd = [find_tool("helm"), "template", RELEASE, CHART, "-n", RELEASE_NAMESPACE, "-f", values]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    (deploy,) = [o for o in load_all(out) if o["kind"] == "Deployment"]
    return deploy["spec"]["template"]["spec"]


def test_operator_and_template_job_images(
    images: dict[str, str], models_root: Path, tmp_path: Path
) -> None:
    pod = chart_operator_pod(tmp_path)
    (container,) = pod["containers"]
    port = free_port()  # the host network is shared: not the chart's 8080
    args = [
        re.sub(r"^--liveness-port=\d+$", f"--liveness-port={port}", a) for a in container["args"]
    ]
    assert f"--liveness-port={port}" in args and "--standalone" in args
    for item in container["env"]:
        if item["name"] == "SMOLSERVE_TEMPLATE_JOB_IMAGE":
            item["value"] = images["template-job"]  # the chart's is a registry's digest
    name = f"smolserve-test-operator-{os.getpid()}"
    termination_log = tmp_path / "termination-log"

    def run_job(job: dict[str, Any]) -> None:
        """Run the Job's pod in the template-job image, the way the kubelet would."""
        job_pod = job["spec"]["template"]["spec"]
        (job_container,) = job_pod["containers"]
        assert job_container["image"] == images["template-job"]
        termination_log.write_text("")
        termination_log.chmod(0o666)
        result = containers.run(
            *RUN,
            *cluster_flags(emulator.kubeconfig),
            *pod_flags(job_pod, job_container, {"/models": models_root}, NAMESPACE),
            f"--volume={termination_log}:{TERMINATION_LOG}:rw",
            f"--entrypoint={job_container['command'][0]}",
            job_container["image"],
            *job_container["args"],
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, (
            f"termination message: {termination_log.read_text()!r}\n{result.stderr[-4000:]}"
        )

    with emulator_process(tmp_path) as emulator:
        containers.run(
            *PODMAN,
            "run",
            "--detach",
            f"--name={name}",
            *ULIMITS,
            *cluster_flags(emulator.kubeconfig),
            *pod_flags(pod, container, {}, RELEASE_NAMESPACE),
            images["operator"],
            *args,
        )
        try:
            wait_healthy(port, lambda: running(name), 120, lambda: logs(name))
            start = time.monotonic()
            configmap, deployment = run_one_serve(emulator, run_job, timeout=120)
            print(f"\nSmolServe → Job → template → Deployment: {time.monotonic() - start:.1f} s")
            operator_logs = logs(name)
        finally:
            containers.run(*PODMAN, "rm", "--force", name, check=False)
    assert configmap["data"]["chat_template.jinja"].strip()
    (owner,) = configmap["metadata"]["ownerReferences"]
    assert owner["kind"] == "SmolServe" and owner["name"] == "smol"
    assert deployment["metadata"]["name"] == "smol"
    assert "Traceback" not in operator_logs, operator_logs[-4000:]


def running(name: str) -> bool:
    state = containers.run(*PODMAN, "inspect", "--format", "{{.State.Running}}", name, check=False)
    return state.stdout.strip() == "true"


def logs(name: str) -> str:
    result = containers.run(*PODMAN, "logs", name, check=False)
    return result.stdout + result.stderr
