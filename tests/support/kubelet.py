"""Play the kubelet and the Job/Deployment controllers for the objects the operator creates.

Nothing runs pods here, so tests do what the cluster would: run a template Job's container
arguments in-process (the real ``smolserve job publish-template``, talking to the emulator
through ``KUBECONFIG``), then write the Job's status and, on failure, a Pod whose termination
message is the one line the command wrote — exactly what the operator reads on a cluster.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes

MERGE = "application/merge-patch+json"


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Kubelet:
    """Runs Jobs and reports Deployments through the API, as the cluster's controllers would."""

    def __init__(self, api_client: Any, mounts: dict[str, Path], workdir: Path) -> None:
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.batch = kubernetes.client.BatchV1Api(api_client)
        self.apps = kubernetes.client.AppsV1Api(api_client)
        self.mounts = mounts  # container path prefix → local directory
        self.workdir = workdir

    def _local(self, arg: str) -> str:
        for prefix, local in self.mounts.items():
            if arg == prefix or arg.startswith(prefix + "/"):
                return str(local) + arg[len(prefix) :]
        return arg

    def _mount_configmaps(self, job: dict[str, Any], namespace: str) -> None:
        """Write the ConfigMap volumes the Job mounts (the user's template source) to disk."""
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        for volume in pod.get("volumes") or []:
            source = volume.get("configMap")
            if not source:
                continue
            mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
            target = Path(self._local(mount["mountPath"]))
            target.mkdir(parents=True, exist_ok=True)
            data = self.core.read_namespaced_config_map(source["name"], namespace).data or {}
            for item in source.get("items") or [{"key": k, "path": k} for k in data]:
                (target / item["path"]).write_text(data[item["key"]])

    def run_job(self, job: dict[str, Any]) -> tuple[int, str]:
        """Run the Job's container in-process, then report it; returns (exit code, message)."""
        from smolserve.cli import main

        meta = job["metadata"]
        namespace = meta["namespace"]
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["smolserve"], container["command"]
        self._mount_configmaps(job, namespace)
        log = self.workdir / f"{meta['name']}.termination-log"
        args = [self._local(a) for a in container["args"]] + ["--termination-log", str(log)]
        env = {"SMOLSERVE_NAMESPACE": namespace}
        env.update({e["name"]: e["value"] for e in container.get("env") or [] if "value" in e})
        for local_only in ("HOME", "HF_HOME"):  # the container's paths, not this machine's
            env.pop(local_only, None)
        with _env(env):
            code = main(args)
        message = log.read_text().strip() if log.exists() else ""
        self.finish_job(job, succeeded=code == 0, message=message)
        return code, message

    def finish_job(self, job: dict[str, Any], *, succeeded: bool, message: str = "") -> None:
        meta = job["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        if not succeeded:
            pod = {
                "metadata": {
                    "name": f"{name}-pod",
                    "labels": {"job-name": name, **meta.get("labels", {})},
                },
                "spec": {"containers": [{"name": "publish-template", "image": "x"}]},
            }
            self.core.create_namespaced_pod(namespace, pod)
            terminated = {"exitCode": 1, "reason": "Error", "message": message}
            status = {
                "phase": "Failed",
                "containerStatuses": [
                    {
                        "name": "publish-template",
                        "image": "x",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": terminated},
                    }
                ],
            }
            self.core.patch_namespaced_pod_status(
                f"{name}-pod", namespace, {"status": status}, _content_type=MERGE
            )
        kind = "Complete" if succeeded else "Failed"
        condition = {
            "type": kind,
            "status": "True",
            "reason": "Done" if succeeded else "BackoffLimitExceeded",
        }
        status = {"conditions": [condition], "succeeded" if succeeded else "failed": 1}
        self.batch.patch_namespaced_job_status(
            name, namespace, {"status": status}, _content_type=MERGE
        )

    def deployment_ready(self, namespace: str, name: str) -> None:
        """Report every replica of the Deployment's current generation as updated and ready."""
        live = self.apps.read_namespaced_deployment(name, namespace)
        replicas = live.spec.replicas or 0
        status = {
            "observedGeneration": live.metadata.generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }
        self.apps.patch_namespaced_deployment_status(
            name, namespace, {"status": status}, _content_type=MERGE
        )
