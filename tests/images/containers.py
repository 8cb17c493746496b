"""Build the images with buildah and run them with podman, without a daemon or a registry.

The recipe of /work/shared/reference/testing-here.md §8: a Debian base made locally
(images/local-base.sh), ``buildah build --isolation chroot --network host`` with the host's CA
bundle mounted, ``podman --runtime runc run`` with explicit ulimits. Every image, layer and
temporary file lives in .work/images/ (ignored), through a storage.conf of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import smolserve

from .scenario import ROOT

WORK = ROOT / ".work" / "images"
BASE_IMAGE = "localhost/smolserve-base:bookworm"
REGISTRY = "localhost/smolserve"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TOOLS = ("podman", "buildah", "runc", "debootstrap")  # Debian packages, installed by .ci/setup
PODMAN = ("podman", "--runtime", "runc")
# Without explicit ulimits runc fails to start a container on these machines.
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
RUN = (*PODMAN, "run", "--rm", *ULIMITS)


KUBECONFIG = "/etc/smolserve-test/kubeconfig"


def image(target: str) -> str:
    return f"{REGISTRY}/{target}:{smolserve.__version__}"


def require_tools() -> None:
    """Skip outside CI when a container tool is missing; in CI that is a failure."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        message = f"not installed: {', '.join(missing)} (run bash .ci/setup as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if os.geteuid() != 0:
        message = "building images here needs root (debootstrap, buildah --isolation chroot)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def tools_env() -> dict[str, str]:
    """podman's and buildah's environment: storage and temporary files under .work/images."""
    (WORK / "tmp").mkdir(parents=True, exist_ok=True)
    conf = WORK / "storage.conf"
    conf.write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{WORK / "storage"}"\n'
        f'runroot = "{WORK / "run"}"\n'
    )
    return {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf), "TMPDIR": str(WORK / "tmp")}


def run(
    *cmd: str | Path, timeout: float = 120, check: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a command with the tools' environment; with ``check``, fail the test on an error."""
    result = subprocess.run(
        [str(c) for c in cmd],
        env={**tools_env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        pytest.fail(f"{' '.join(map(str, cmd))} exited {result.returncode}:\n{output}")
    return result


def build_images() -> dict[str, float]:
    """The local base (made once, then kept in .work/images) and both images, built with
    buildah through images/build.sh; the seconds each step took."""
    start = time.monotonic()
    run("bash", ROOT / "images" / "local-base.sh", BASE_IMAGE, timeout=600)
    base = time.monotonic() - start
    flags = ["--isolation", "chroot", "--network", "host", "--layers"]
    if CA_BUNDLE.exists():  # pip in the build trusts what the host trusts
        flags += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "--build-arg", f"PIP_CERT={CA_BUNDLE}"]
    if os.environ.get("PIP_INDEX_URL"):
        flags += ["--build-arg", f"PIP_INDEX_URL={os.environ['PIP_INDEX_URL']}"]
    start = time.monotonic()
    run(
        "bash",
        ROOT / "images" / "build.sh",
        timeout=1500,
        BUILDER="buildah",
        BASE=BASE_IMAGE,
        REGISTRY=REGISTRY,
        BUILD_FLAGS=" ".join(flags),
    )
    return {"base": base, "build": time.monotonic() - start}


def pod_flags(
    pod: dict[str, Any], container: dict[str, Any], host_paths: dict[str, Path], namespace: str
) -> list[str]:
    """``podman run`` flags that give a container what its pod spec gives it on Kubernetes.

    The uid and gid (``runAsUser``/``runAsGroup``), the read-only root filesystem and nothing
    else writable, dropped capabilities, no privilege escalation, each emptyDir as a tmpfs,
    every other volume as the host directory ``host_paths`` names for its mount path, and the
    environment (values; the downward API's namespace). Anything else fails the test rather
    than run with less than the pod would get.
    """
    pod_security = pod.get("securityContext") or {}
    security = container.get("securityContext") or {}
    uid = security.get("runAsUser", pod_security.get("runAsUser"))
    gid = security.get("runAsGroup", pod_security.get("runAsGroup", uid))
    assert uid not in (None, 0), "the pod must run as a non-root uid"
    flags = ["--user", f"{uid}:{gid}"]
    if security.get("readOnlyRootFilesystem"):
        flags += ["--read-only", "--read-only-tmpfs=false"]  # no tmpfs the pod would not have
    for capability in (security.get("capabilities") or {}).get("drop") or []:
        flags += ["--cap-drop", capability]
    if security.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        path, volume = mount["mountPath"], volumes[mount["name"]]
        if "emptyDir" in volume:
            flags += ["--tmpfs", f"{path}:rw,mode=1777"]
        else:
            mode = "ro" if mount.get("readOnly") else "rw"
            flags += ["--volume", f"{host_paths[path]}:{path}:{mode}"]
    for item in container.get("env") or []:
        if "value" in item:
            value = item["value"]
        else:
            field = item["valueFrom"]["fieldRef"]["fieldPath"]
            value = {"metadata.namespace": namespace, "metadata.name": "smolserve-test"}[field]
        flags += ["--env", f"{item['name']}={value}"]
    return flags


def cluster_flags(kubeconfig: Path) -> list[str]:
    """The host network (the emulator listens on 127.0.0.1) and the emulator's kubeconfig,
    which stands in for the service-account token a pod would have."""
    return [
        "--network=host",
        f"--volume={kubeconfig}:{KUBECONFIG}:ro",
        f"--env=KUBECONFIG={KUBECONFIG}",
    ]
