"""The Kubernetes resource types smolserve reads or writes, and ``Ref``, the name of one object.

One table, pure: the operator's client builds its URL paths from it, the kopf handlers and
settings take their watched resources from it, and the planner names objects with ``Ref``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smolserve import labels


@dataclass(frozen=True)
class Resource:
    """One resource type: its kind and where the API serves it."""

    kind: str
    group: str  # "" for the core API
    version: str
    plural: str
    namespaced: bool = True
    # A CRD of another project (KEDA, Gateway API Inference Extension) that a cluster may not
    # serve: the operator asks discovery before writing one (``operator/discovery.py``).
    optional: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        """The API path this resource's group and version live under."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


SMOLSERVE = Resource(labels.KIND, labels.GROUP, labels.VERSION, labels.PLURAL)
POD = Resource("Pod", "", "v1", "pods")

# What a SmolServe owns, in the order the operator creates them: the template Job's RBAC before
# the Job, the Deployment last. Every one of them carries the label ``smolserve.dev/serve``.
CHILDREN = (
    Resource("ServiceAccount", "", "v1", "serviceaccounts"),
    Resource("Role", "rbac.authorization.k8s.io", "v1", "roles"),
    Resource("RoleBinding", "rbac.authorization.k8s.io", "v1", "rolebindings"),
    Resource("Job", "batch", "v1", "jobs"),
    Resource("ConfigMap", "", "v1", "configmaps"),
    Resource("Service", "", "v1", "services"),
    Resource("Deployment", "apps", "v1", "deployments"),
    # After the Deployment they scale or route to.
    Resource("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers"),
    Resource("ScaledObject", "keda.sh", "v1alpha1", "scaledobjects", optional=True),
    Resource("InferencePool", "inference.networking.k8s.io", "v1", "inferencepools", optional=True),
)

BY_KIND: dict[str, Resource] = {r.kind: r for r in (SMOLSERVE, POD, *CHILDREN)}
CHILD_KINDS: tuple[str, ...] = tuple(r.kind for r in CHILDREN)
OPTIONAL_CHILDREN: tuple[Resource, ...] = tuple(r for r in CHILDREN if r.optional)


def creation_order(kind: str) -> int:
    """Where objects of ``kind`` come in a list of creations (unknown kinds last)."""
    return CHILD_KINDS.index(kind) if kind in CHILD_KINDS else len(CHILD_KINDS)


@dataclass(frozen=True)
class Ref:
    """Which object: kind, namespace, name."""

    kind: str
    namespace: str | None
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Ref:
        meta = obj["metadata"]
        return cls(obj["kind"], meta.get("namespace"), meta["name"])

    @property
    def resource(self) -> Resource:
        return BY_KIND[self.kind]

    def collection(self) -> str:
        resource = self.resource
        if self.namespace and resource.namespaced:
            return f"{resource.prefix}/namespaces/{self.namespace}/{resource.plural}"
        return f"{resource.prefix}/{resource.plural}"

    def path(self, subresource: str | None = None) -> str:
        return f"{self.collection()}/{self.name}" + (f"/{subresource}" if subresource else "")

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"
