"""The test's hands on the emulated node: run a template Job's pod, make pods ready.

The emulator's controllers create the pods (``controllers.py``) and its node starts them
(``node.py``); nothing runs a container there. ``run_job`` does what the container would: it
waits for the Job's pod to run, runs the container's arguments in-process (the real
``smolserve job publish-template``, talking to the emulator through ``KUBECONFIG``, with the
container's environment, ``secretKeyRef`` variables read from the Secrets), and ends
the container with that exit code and the one line the command wrote to its termination log;
the Job controller turns that into the Job's status, retrying within ``backoffLimit``, exactly
as the operator sees it on a cluster. With the node's ``manual`` readiness (the operator
tests'), pods are ready only when a test says so: ``set_ready``, or ``deployment_ready``
for a whole rollout.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .cluster import EmulatedCluster
from .controllers import ControllerManager, deployment_complete, job_finished
from .node import Readiness
from .objects import is_active, is_ready
from .running import wait_for


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
    """Runs Jobs' containers and decides pods' readiness, through the emulated node."""

    def __init__(self, cluster: EmulatedCluster, mounts: dict[str, Path], workdir: Path) -> None:
        if cluster.controllers is None:
            raise ValueError("the Kubelet needs the emulator's controllers (controllers=True)")
        self.cluster = cluster
        self.mounts = mounts  # container path prefix → local directory
        self.workdir = workdir

    def _on_loop(self, fn: Any) -> Any:
        controllers = self.cluster.controllers
        assert controllers is not None
        return self.cluster.call(lambda _: fn(controllers))

    # --- reading -----------------------------------------------------------------------------

    def pods(self, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
        """The pods of a Deployment, ReplicaSet or Job (copies, oldest first)."""
        return self._on_loop(lambda c: c.pods_of(namespace, kind, name))

    def replicasets(self, namespace: str, deployment: str) -> list[dict[str, Any]]:
        """A Deployment's ReplicaSets, oldest revision first (copies)."""
        return self._on_loop(lambda c: c.replicasets_of(namespace, deployment))

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until the controllers have nothing queued and every pod has started."""
        wait_for(lambda: self._on_loop(lambda c: c.settled()), timeout, what="the controllers")

    # --- acting on pods ----------------------------------------------------------------------

    def set_readiness(self, readiness: Readiness) -> None:
        """Change the node's readiness policy (``auto``, ``manual`` or ``pod → seconds|None``)
        for the containers that start or restart from now on."""
        self._on_loop(lambda c: setattr(c.node, "readiness", readiness))

    def set_ready(
        self, namespace: str, pod: str, ready: bool = True, container: str | None = None
    ) -> None:
        """Mark a running pod's containers ready or not ready (its probes' verdict)."""
        self._on_loop(lambda c: c.node.set_ready(namespace, pod, ready, container))

    def exit_container(
        self,
        namespace: str,
        pod: str,
        exit_code: int = 1,
        message: str = "",
        container: str | None = None,
    ) -> None:
        """End a running pod's containers: they restart, or the pod ends (restartPolicy)."""
        self._on_loop(
            lambda c: c.node.exit_container(namespace, pod, exit_code, message, container)
        )

    def wait_running(self, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
        """Wait until the owner has pods and every active one is running; returns them."""

        def running() -> list[dict[str, Any]] | None:
            pods = [p for p in self.pods(namespace, kind, name) if is_active(p)]
            phases = {(p.get("status") or {}).get("phase") for p in pods}
            return pods if pods and phases == {"Running"} else None

        return wait_for(running, what=f"running pods of {kind} {namespace}/{name}")

    def deployment_ready(self, namespace: str, name: str, timeout: float = 15.0) -> None:
        """Make every current pod of the Deployment ready, again as the rollout creates new
        ones, until the Deployment controller reports the rollout complete."""

        def step(c: ControllerManager) -> bool:
            deployment = c.get("deployments", namespace, name, "apps")
            if deployment is None:
                raise AssertionError(f"no Deployment {namespace}/{name}")
            if deployment_complete(deployment, deployment.get("status") or {}):
                return True
            for pod in c.pods_of(namespace, "Deployment", name):
                if (pod.get("status") or {}).get("phase") == "Running" and not is_ready(pod):
                    c.node.set_ready(namespace, pod["metadata"]["name"])
            return False

        wait_for(
            lambda: self._on_loop(step), timeout, what=f"Deployment {namespace}/{name} rolled out"
        )

    # --- running Jobs ------------------------------------------------------------------------

    def _local(self, arg: str) -> str:
        for prefix, local in self.mounts.items():
            if arg == prefix or arg.startswith(prefix + "/"):
                return str(local) + arg[len(prefix) :]
        return arg

    def _mount_configmaps(self, pod: dict[str, Any]) -> None:
        """Write the ConfigMap volumes the pod mounts (the user's template source) to disk."""
        spec = pod["spec"]
        container = spec["containers"][0]
        namespace = pod["metadata"]["namespace"]
        for volume in spec.get("volumes") or []:
            source = volume.get("configMap")
            if not source:
                continue
            mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
            target = Path(self._local(mount["mountPath"]))
            target.mkdir(parents=True, exist_ok=True)
            cm = self.cluster.call(lambda e, n=source["name"]: e.get("configmaps", namespace, n))
            data = (cm or {}).get("data") or {}
            for item in source.get("items") or [{"key": k, "path": k} for k in data]:
                (target / item["path"]).write_text(data[item["key"]])

    def _secret_env(self, namespace: str, container: dict[str, Any]) -> dict[str, str]:
        """The container's ``secretKeyRef`` variables, read from the Secrets as the kubelet
        reads them (a missing Secret or key that is not ``optional`` keeps the container from
        starting: here, the test fails)."""
        env = {}
        for var in container.get("env") or []:
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if not ref:
                continue
            secret = self.cluster.call(lambda e, n=ref["name"]: e.get("secrets", namespace, n))
            data = (secret or {}).get("data") or {}
            if ref["key"] in data:
                env[var["name"]] = base64.b64decode(data[ref["key"]]).decode()
            elif not ref.get("optional"):
                raise AssertionError(
                    f"CreateContainerConfigError: Secret {namespace}/{ref['name']} has no "
                    f"key {ref['key']!r} (env {var['name']})"
                )
        return env

    def _run_container(self, pod: dict[str, Any]) -> tuple[int, str]:
        from smolserve.cli import main

        meta = pod["metadata"]
        container = pod["spec"]["containers"][0]
        assert container["command"] == ["smolserve"], container["command"]
        self._mount_configmaps(pod)
        log = self.workdir / f"{meta['name']}.termination-log"
        args = [self._local(a) for a in container["args"]] + ["--termination-log", str(log)]
        env = {"SMOLSERVE_NAMESPACE": meta["namespace"]}
        env.update({e["name"]: e["value"] for e in container.get("env") or [] if "value" in e})
        env.update(self._secret_env(meta["namespace"], container))
        for local_only in ("HOME", "HF_HOME"):  # the container's paths, not this machine's
            env.pop(local_only, None)
        with _env(env):
            code = main(args)
        return code, log.read_text().strip() if log.exists() else ""

    def finish_job(self, job: dict[str, Any], *, succeeded: bool = True, message: str = "") -> None:
        """End the Job's pods as they come, with exit code 0 (or 1 and ``message``), until the
        Job controller reports it finished: what a pod does that ran without this kubelet."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        done: set[str] = set()

        def step(c: ControllerManager) -> bool:
            live = c.get("jobs", namespace, name, "batch")
            if live is None or job_finished(live):
                return True
            for pod in c.pods_of(namespace, "Job", name):
                running = (pod.get("status") or {}).get("phase") == "Running"
                if running and pod["metadata"]["uid"] not in done:
                    c.node.exit_container(
                        namespace, pod["metadata"]["name"], 0 if succeeded else 1, message
                    )
                    done.add(pod["metadata"]["uid"])
            return False

        wait_for(lambda: self._on_loop(step), what=f"Job {namespace}/{name} to finish")

    def run_job(self, job: dict[str, Any]) -> tuple[int, str]:
        """Run the Job's pods as they come until the Job finishes; returns the last pod's
        (exit code, termination message)."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        done: set[str] = set()
        while True:
            fresh = [
                p
                for p in self.wait_running(namespace, "Job", name)
                if p["metadata"]["uid"] not in done
            ]
            if not fresh:
                raise AssertionError(f"Job {namespace}/{name}: no new pod to run")
            pod = fresh[0]
            code, message = self._run_container(pod)
            done.add(pod["metadata"]["uid"])
            self.exit_container(namespace, pod["metadata"]["name"], code, message)

            def next_step() -> str | None:
                def look(c: ControllerManager) -> str | None:
                    live = c.get("jobs", namespace, name, "batch")
                    if live is None or job_finished(live):
                        return "finished"
                    pods = [p for p in c.pods_of(namespace, "Job", name) if is_active(p)]
                    return "retry" if any(p["metadata"]["uid"] not in done for p in pods) else None

                return self._on_loop(look)

            if wait_for(next_step, what=f"Job {namespace}/{name} to finish or retry") == "finished":
                return code, message
