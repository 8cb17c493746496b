"""The kopf handlers: what triggers a reconcile, and the indexes it reads. Thin by design.

Every trigger queues the same ``Reconciler.reconcile`` for one SmolServe:

- the SmolServe is created, found at start-up, or its spec changes (a new generation; its own
  status writes are not a change: ``Reconciler.serve_seen``, controller-runtime's
  generation-changed predicate);
- one of its children changes (everything labelled ``smolserve.dev/serve=<name>``), unless
  the event only shows the operator's own last write;
- the user's template-source ConfigMap changes (ConfigMaps labelled
  ``app.kubernetes.io/part-of=smolserve`` without the serve label);
- one of its vLLM pods is deleted.

The SmolServes, the optional child kinds and the pods come through kopf. The other child
kinds and the template sources come through the operator's own watches (``children.py``,
started here at start-up, with the peering watch that pauses the work queue when kopf's
peering pauses this replica: ``peering.py``).

There are no kopf change handlers (create/update/resume): kopf would keep a diff base and
progress records in each SmolServe, written with requests of their own, and deep-copy every
SmolServe event to diff it. Every handler is an event handler that goes through
``Reconciler.submit``, which queues the reconcile and returns at once (kopf indexes an
object's next event only after its handlers for the last one returned), coalesces them and
retries, with growing pauses (or the server's ``Retry-After``), for as long as the API keeps
failing: giving up would leave the SmolServe unreconciled until its next event. Index
functions are async and do no I/O (no thread hop per watch event); the reconcile does I/O and
runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from smolserve import labels
from smolserve.kinds import OPTIONAL_CHILDREN, SMOLSERVE
from smolserve.manifests.common import SERVER
from smolserve.operator.agents import pod_projection
from smolserve.operator.children import ChildCaches
from smolserve.operator.peering import PeeringGate
from smolserve.operator.projection import pack
from smolserve.operator.runtime import PODS_INDEX, Reconciler, children_index


@dataclass(frozen=True)
class Peering:
    """This replica in kopf's peering: the peering object's name, its identity and priority
    there (both also given to kopf)."""

    name: str
    identity: str
    priority: int


def register(
    registry: kopf.OperatorRegistry,
    reconciler: Reconciler,
    *,
    namespaces: Sequence[str] = (),
    peering: Peering | None = None,
) -> None:
    """Register every handler into ``registry`` (one registry per operator, or per test).

    ``namespaces``: those served (none: the whole cluster); ``peering``: this replica's
    place in kopf's peering (None: standalone)."""
    serve_resource = (SMOLSERVE.group, SMOLSERVE.version, SMOLSERVE.plural)
    labelled = {labels.SERVE: kopf.PRESENT}
    children = ChildCaches(reconciler, list(namespaces) or [None])
    background: list[asyncio.Task[None]] = []

    async def start_watches(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        kopf_indexes = [PODS_INDEX, *(children_index(c.kind) for c in OPTIONAL_CHILDREN)]
        children.with_kopf_indexes({name: kwargs[name] for name in kopf_indexes})
        background.append(asyncio.create_task(children.run(settings), name="child watches"))
        if peering is not None:
            gate = PeeringGate(
                reconciler.gate.active,
                name=peering.name,
                identity=peering.identity,
                priority=peering.priority,
                namespaces=list(namespaces) or [None],
            )
            background.append(asyncio.create_task(gate.run(settings), name="peering watch"))

    kopf.on.startup(id="watch-children", registry=registry)(start_watches)

    async def on_serve_event(
        namespace: str, name: str, uid: str, body: kopf.Body, type: str | None, **_: Any
    ) -> None:
        key = (namespace, name)
        if reconciler.kopf_context is None:
            reconciler.kopf_context = contextvars.copy_context()
        if type == "DELETED":  # forgotten even if no child's event ever comes (it had none)
            await asyncio.to_thread(reconciler.deleted, key, uid)
        elif reconciler.serve_seen(key, body):
            await reconciler.submit(key, children.indexes)

    kopf.on.event(*serve_resource, id="serve-changed", registry=registry)(on_serve_event)

    async def index_child(namespace: str, body: kopf.Body, **_: Any) -> dict:
        return {(namespace, body["metadata"]["labels"][labels.SERVE]): pack(body)}

    async def on_child(namespace: str, body: kopf.Body, type: str | None, **_: Any) -> None:
        key = (namespace, body["metadata"]["labels"][labels.SERVE])
        deleted = type == "DELETED"
        if not reconciler.overlay.echoed(key, body, deleted=deleted):
            await reconciler.submit(key, children.indexes, after_deletion=deleted)

    # The optional kinds (KEDA, InferencePool) stay with kopf: it starts watching them when
    # their CRDs appear.
    for child in OPTIONAL_CHILDREN:
        resource = (child.group, child.version, child.plural)
        index_id, event_id = children_index(child.kind), f"{child.kind.lower()}-changed"
        kopf.index(*resource, id=index_id, labels=labelled, registry=registry)(index_child)
        kopf.on.event(*resource, id=event_id, labels=labelled, registry=registry)(on_child)

    # The liveness endpoint (--liveness-port) reports these with its answer: what the
    # operator keeps per SmolServe and its threads, for leak checks from outside the process.
    kopf.on.probe(id="tracked", registry=registry)(lambda **_: reconciler.tracked())
    kopf.on.probe(id="threads", registry=registry)(lambda **_: threading.active_count())
    # The vLLM pods, as small projections (whose agent's report is current); only a pod's
    # deletion triggers a reconcile (its report is then removed): a rollout's progress shows
    # in the Deployment's status, and an agent's verdict in its report.
    pods = ("", "v1", "pods")
    server_pods = {labels.SERVE: kopf.PRESENT, labels.COMPONENT: SERVER}

    async def index_pod(namespace: str, body: kopf.Body, **_: Any) -> dict:
        return {(namespace, body["metadata"]["labels"][labels.SERVE]): pod_projection(body)}

    async def on_pod(namespace: str, body: kopf.Body, type: str | None, **_: Any) -> None:
        if type == "DELETED":
            key = (namespace, body["metadata"]["labels"][labels.SERVE])
            await reconciler.submit(key, children.indexes, after_deletion=True)

    kopf.index(*pods, id=PODS_INDEX, labels=server_pods, registry=registry)(index_pod)
    kopf.on.event(*pods, id="pod-gone", labels=server_pods, registry=registry)(on_pod)

    async def on_cleanup(**_: Any) -> None:
        reconciler.close()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)

    kopf.on.cleanup(id="stop-timers", registry=registry)(on_cleanup)
