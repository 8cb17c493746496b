"""The test's view of a cluster with the operator running: ``World``.

Shared by the operator's integration tests. A check that the operator wrote *nothing* first
waits for a positive sign that it processed the state in question: its reconciler's progress
reaches the resourceVersion the test made or read (``World.processed``). ``World.assert_steady``
makes such a sign on purpose (a change to a child the operator owns no field of) and asserts
that reconciling it wrote nothing.
"""

from __future__ import annotations

from typing import Any

import kubernetes

from smolserve import labels
from smolserve.operator.kube import USER_AGENT

from .cluster import EmulatedCluster
from .factories import PVC_MODEL, smolserve
from .kubelet import Kubelet
from .running import OperatorThread, wait_for

GROUP, VERSION, PLURAL = labels.GROUP, labels.VERSION, labels.PLURAL
NS = "default"
MERGE = "application/merge-patch+json"
# The label a template-source ConfigMap needs for the operator to watch it.
SOURCE_LABELS = {labels.PART_OF: labels.APP_NAME}


class World:
    """The test's view of the cluster: the API client, the emulator's store, the kubelet, and
    the running operator's reconciler."""

    def __init__(
        self,
        cluster: EmulatedCluster,
        api_client: Any,
        kubelet: Kubelet,
        operator: OperatorThread,
    ) -> None:
        self.cluster = cluster
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.apps = kubernetes.client.AppsV1Api(api_client)
        self.kubelet = kubelet
        self.operator = operator

    def create(self, spec: dict[str, Any] | None = None, name: str = "smol") -> dict[str, Any]:
        body = smolserve({"model": PVC_MODEL, **(spec or {})}, name=name, namespace=NS)
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)

    def patch_spec(self, spec: dict[str, Any], name: str = "smol") -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, name, {"spec": spec}, _content_type=MERGE
        )

    def delete(self, name: str = "smol") -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)

    def serve(self, name: str = "smol") -> dict[str, Any]:
        return next(
            s for s in self.cluster.snapshot(PLURAL, GROUP) if s["metadata"]["name"] == name
        )

    def children(self, plural: str, group: str = "", serve: str = "smol") -> list[dict[str, Any]]:
        return self.cluster.snapshot(plural, group, **{labels.SERVE: serve})

    def templates(self, serve: str = "smol") -> list[dict[str, Any]]:
        return [
            cm
            for cm in self.children("configmaps", serve=serve)
            if cm["metadata"]["labels"].get(labels.COMPONENT) == "template"
        ]

    def deployment(self, serve: str = "smol") -> dict[str, Any] | None:
        found = self.children("deployments", "apps", serve)
        return found[0] if found else None

    def condition(self, type_: str, name: str = "smol") -> dict[str, Any]:
        conditions = (self.serve(name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), {})

    def wait_job(self, not_in: set[str] = frozenset()) -> dict[str, Any]:
        def new_job() -> dict[str, Any] | None:
            jobs = [
                j for j in self.children("jobs", "batch") if j["metadata"]["name"] not in not_in
            ]
            return jobs[0] if jobs else None

        return wait_for(new_job, what="a new template Job")

    def job_names(self) -> set[str]:
        return {j["metadata"]["name"] for j in self.children("jobs", "batch")}

    def run_template(self, not_in: set[str] = frozenset()) -> dict[str, Any]:
        """Wait for the template Job, run it, and wait until the Deployment mounts its output."""
        job = self.wait_job(not_in)
        code, message = self.kubelet.run_job(job)
        assert code == 0, message
        inputs8 = job["metadata"]["labels"][labels.INPUTS_HASH]
        cm = wait_for(
            lambda: [
                t
                for t in self.templates()
                if t["metadata"]["labels"][labels.INPUTS_HASH] == inputs8
            ],
            what="the template ConfigMap",
        )[0]
        wait_for(lambda: mounted(self.deployment()) == cm["metadata"]["name"], what="the rollout")
        return cm

    def ready(self) -> None:
        """Report the Deployment ready and wait until the SmolServe says so."""
        self.kubelet.deployment_ready(NS, "smol")
        wait_for(
            lambda: (self.serve().get("status") or {}).get("phase") == "Ready", what="phase Ready"
        )

    def writes(self, since: int = 0) -> list[tuple[str, str, str]]:
        """Requests that change something, made by the operator or by kopf, after ``since``."""
        log = self.cluster.call(lambda emulator: list(emulator.log))[since:]
        return [
            (r.method, r.path, r.user_agent)
            for r in log
            if r.method != "GET"
            and (r.user_agent.startswith(USER_AGENT) or r.user_agent.startswith("kopf/"))
        ]

    def job_posts(self) -> list[tuple[str, str, str]]:
        return [w for w in self.writes() if w[0] == "POST" and w[1].endswith("/jobs")]

    def log_length(self) -> int:
        return self.cluster.call(lambda emulator: len(emulator.log))

    def events(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.cluster.snapshot("events") if e.get("reason") == reason]

    def processed(self, version: int, name: str = "smol") -> Any:
        """Wait until the operator reconciled ``name`` having seen ``version`` (or newer)."""
        reconciler = self.operator.reconciler
        assert reconciler is not None

        def caught_up() -> Any:
            progress = reconciler.progress((NS, name))
            return progress if progress is not None and progress.seen >= version else None

        return wait_for(caught_up, what=f"the operator to process resourceVersion {version}")

    def assert_steady(self, name: str = "smol") -> None:
        """The operator is at rest for ``name``: reconciling its current state writes nothing.

        Once no reconcile is running, touches a child the operator owns no field of (an
        annotation on the Service), waits for the reconcile that this triggers (the positive
        sign), and checks that it planned no write and that none reached the API.
        """
        reconciler = self.operator.reconciler
        assert reconciler is not None
        wait_for(lambda: reconciler.idle(), what="the operator to finish what it is doing")
        start = self.log_length()
        touched = self.core.patch_namespaced_service(
            name, NS, {"metadata": {"annotations": {"test/touch": str(start)}}}, _content_type=MERGE
        )
        progress = self.processed(int(touched.metadata.resource_version), name)
        assert (progress.writes, progress.events) == (0, 0), progress
        assert self.writes(start) == [], self.writes(start)


def mounted(deployment: dict[str, Any] | None) -> str | None:
    if deployment is None:
        return None
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    return next(v["configMap"]["name"] for v in volumes if v["name"] == "template")


def template_annotation(deployment: dict[str, Any]) -> str:
    return deployment["spec"]["template"]["metadata"]["annotations"][labels.TEMPLATE_HASH]
