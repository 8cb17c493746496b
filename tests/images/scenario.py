"""One SmolServe through the operator and its template Job, each in a process of its own.

The emulator runs in its own process (``python -m support.serve``, as the operator benchmark
runs it); the operator and the Job's command run wherever the caller puts them: host processes
(test_role_imports.py) or the images (test_containers.py). This module plays the rest of the
cluster: it creates the SmolServe, hands the caller the Job the operator created, reports the
Job finished the way the Job controller would, and waits for the Deployment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import yaml

from smolserve import labels

T = TypeVar("T")
TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
CRD_PATH = ROOT / "crds" / "smolserve.yaml"
NAMESPACE = "default"
SERVE_NAME = "smol"
MODEL_DIR = "SmolLM3-3B"  # the tokenizer's directory on the "models" PVC
SERVE = {
    "apiVersion": labels.API_VERSION,
    "kind": labels.KIND,
    "metadata": {"name": SERVE_NAME, "namespace": NAMESPACE},
    "spec": {"model": {"pvc": {"claimName": "models", "path": MODEL_DIR}}, "replicas": 0},
}


def wait_for(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(
    port: int, alive: Callable[[], bool], timeout: float, logs: Callable[[], str]
) -> None:
    """Wait for an operator's liveness endpoint on 127.0.0.1:``port``; fail with its logs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            if not alive() or time.monotonic() > deadline:
                raise AssertionError(f"the operator did not become healthy:\n{logs()}") from None
            time.sleep(0.2)


def job_env(container: dict, namespace: str) -> dict[str, str]:
    """The Job container's environment: its values, and the namespace from the downward API."""
    env = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[item["name"]] = namespace
        else:
            raise AssertionError(f"the test cannot provide env {item}")
    return env


def python_env(**extra: str) -> dict[str, str]:
    """This process's environment, with this checkout's package first on the path."""
    path = os.pathsep.join(p for p in (str(ROOT / "operator"), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


@dataclass
class Emulator:
    """The emulator's kubeconfig and the test's own client for it."""

    kubeconfig: Path
    url: str
    client: Any

    @property
    def core(self) -> Any:
        return kubernetes.client.CoreV1Api(self.client)

    @property
    def batch(self) -> Any:
        return kubernetes.client.BatchV1Api(self.client)

    @property
    def apps(self) -> Any:
        return kubernetes.client.AppsV1Api(self.client)

    @property
    def custom(self) -> Any:
        return kubernetes.client.CustomObjectsApi(self.client)

    def create_serve(self) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(
            labels.GROUP, labels.VERSION, NAMESPACE, labels.PLURAL, SERVE
        )

    def wait_status_names(self, configmap: str, timeout: float) -> dict[str, Any]:
        """The SmolServe's status, once the operator has written the template it serves."""

        def status() -> dict[str, Any] | None:
            serve = self.custom.get_namespaced_custom_object(
                labels.GROUP, labels.VERSION, NAMESPACE, labels.PLURAL, SERVE_NAME
            )
            found = serve.get("status") or {}
            return found if configmap in json.dumps(found) else None

        return wait_for(status, timeout, f"the SmolServe's status to name {configmap}")

    def wait_job(self, timeout: float) -> dict[str, Any]:
        """The template Job the operator created for the SmolServe, as a plain dict."""

        def job() -> dict[str, Any] | None:
            found = self.batch.list_namespaced_job(
                NAMESPACE, label_selector=f"{labels.SERVE}={SERVE_NAME}"
            ).items
            return self.client.sanitize_for_serialization(found[0]) if found else None

        return wait_for(job, timeout, "the operator to create the template Job")

    def template_configmap(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """The template ConfigMap published for the Job's inputs, if it exists."""
        inputs8 = job["metadata"]["labels"][labels.INPUTS_HASH]
        found = self.core.list_namespaced_config_map(
            NAMESPACE, label_selector=f"{labels.SERVE}={SERVE_NAME},{labels.INPUTS_HASH}={inputs8}"
        ).items
        return self.client.sanitize_for_serialization(found[0]) if found else None

    def finish_job(self, job: dict[str, Any]) -> None:
        """Mark the Job complete, as the Job controller does once its pod succeeded."""
        status = {
            "conditions": [{"type": "Complete", "status": "True", "reason": "Done"}],
            "succeeded": 1,
        }
        self.batch.patch_namespaced_job_status(
            job["metadata"]["name"],
            NAMESPACE,
            {"status": status},
            _content_type="application/merge-patch+json",
        )

    def wait_deployment(self, configmap: str, timeout: float) -> dict[str, Any]:
        """The server Deployment, once it mounts the ConfigMap ``configmap``."""

        def deployment() -> dict[str, Any] | None:
            found = self.apps.list_namespaced_deployment(
                NAMESPACE, label_selector=f"{labels.SERVE}={SERVE_NAME}"
            ).items
            if not found:
                return None
            deploy = self.client.sanitize_for_serialization(found[0])
            volumes = deploy["spec"]["template"]["spec"].get("volumes") or []
            names = {(v.get("configMap") or {}).get("name") for v in volumes}
            return deploy if configmap in names else None

        return wait_for(deployment, timeout, f"a Deployment that mounts {configmap}")


@contextmanager
def emulator_process(workdir: Path) -> Iterator[Emulator]:
    """The test suite's emulator in its own process, with the SmolServe CRD created."""
    kubeconfig = workdir / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "support.serve", "--kubeconfig", str(kubeconfig)],
        cwd=TESTS,
        env=python_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("serving "), f"the emulator did not start: {line!r}"
        kubeconfig.chmod(0o644)  # containers read it as their own, non-root uid
        client = kubernetes.config.new_client_from_config(str(kubeconfig))
        crd = yaml.safe_load(CRD_PATH.read_text())
        kubernetes.client.ApiextensionsV1Api(client).create_custom_resource_definition(crd)
        yield Emulator(kubeconfig, line.split()[1].rstrip("/"), client)
    finally:
        proc.terminate()
        proc.wait(10)


def run_one_serve(
    emulator: Emulator, run_job: Callable[[dict[str, Any]], None], timeout: float = 60
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Create the SmolServe, run its template Job with ``run_job``, and wait for the rollout.

    The operator must already be running against ``emulator``. ``run_job`` runs the Job's
    container (and fails the test if it fails). Returns the template ConfigMap and the
    Deployment, once the SmolServe's status names that ConfigMap.
    """
    emulator.create_serve()
    job = emulator.wait_job(timeout)
    run_job(job)
    configmap = emulator.template_configmap(job)
    assert configmap, "the template Job's command succeeded but published no ConfigMap"
    emulator.finish_job(job)
    deployment = emulator.wait_deployment(configmap["metadata"]["name"], timeout)
    emulator.wait_status_names(configmap["metadata"]["name"], timeout)
    return configmap, deployment
