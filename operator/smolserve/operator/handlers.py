"""The kopf handlers: what triggers a reconcile, and the indexes it reads. Thin by design.

Every trigger queues the same ``Reconciler.reconcile`` for one SmolServe:

- the SmolServe is created, found at start-up, or its spec changes (a new generation; its own
  status writes are not a change: ``Reconciler.serve_seen``, controller-runtime's
  generation-changed predicate);
- one of its children changes (everything labelled ``smolserve.dev/serve=<name>``), unless
  the event only shows the operator's own last write;
- the user's template-source ConfigMap changes (ConfigMaps labelled
  ``app.kubernetes.io/part-of=smolserve`` without the serve label).

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
import threading
from typing import Any

import kopf

from smolserve import labels
from smolserve.kinds import CHILDREN, SMOLSERVE
from smolserve.manifests.common import SERVER
from smolserve.operator.agents import pod_projection
from smolserve.operator.projection import pack
from smolserve.operator.runtime import (
    PODS_INDEX,
    SOURCE_LABEL,
    SOURCES_INDEX,
    Reconciler,
    children_index,
    text_hashes,
)


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    """Register every handler into ``registry`` (one registry per operator, or per test)."""
    serve_resource = (SMOLSERVE.group, SMOLSERVE.version, SMOLSERVE.plural)
    labelled = {labels.SERVE: kopf.PRESENT}

    async def on_serve_event(
        namespace: str, name: str, uid: str, body: kopf.Body, type: str | None, **kwargs: Any
    ) -> None:
        key = (namespace, name)
        if type == "DELETED":  # forgotten even if no child's event ever comes (it had none)
            await asyncio.to_thread(reconciler.deleted, key, uid)
        elif reconciler.serve_seen(key, body):
            await reconciler.submit(key, kwargs)

    kopf.on.event(*serve_resource, id="serve-changed", registry=registry)(on_serve_event)

    async def index_child(namespace: str, body: kopf.Body, **_: Any) -> dict:
        return {(namespace, body["metadata"]["labels"][labels.SERVE]): pack(body)}

    async def on_child(namespace: str, body: kopf.Body, type: str | None, **kwargs: Any) -> None:
        key = (namespace, body["metadata"]["labels"][labels.SERVE])
        deleted = type == "DELETED"
        if not reconciler.overlay.echoed(key, body, deleted=deleted):
            await reconciler.submit(key, kwargs, after_deletion=deleted)

    for child in CHILDREN:
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

    async def on_pod(namespace: str, body: kopf.Body, type: str | None, **kwargs: Any) -> None:
        if type == "DELETED":
            key = (namespace, body["metadata"]["labels"][labels.SERVE])
            await reconciler.submit(key, kwargs, after_deletion=True)

    kopf.index(*pods, id=PODS_INDEX, labels=server_pods, registry=registry)(index_pod)
    kopf.on.event(*pods, id="pod-gone", labels=server_pods, registry=registry)(on_pod)

    def on_cleanup(**_: Any) -> None:
        reconciler.close()

    kopf.on.cleanup(id="stop-timers", registry=registry)(on_cleanup)

    source_labels = {SOURCE_LABEL[0]: SOURCE_LABEL[1], labels.SERVE: kopf.ABSENT}

    async def index_source(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
        return {(namespace, name): text_hashes(body)}

    async def on_source(namespace: str, name: str, **kwargs: Any) -> None:
        for key in reconciler.referrers(namespace, name):
            await reconciler.submit(key, kwargs)

    configmaps = ("", "v1", "configmaps")
    kopf.index(*configmaps, id=SOURCES_INDEX, labels=source_labels, registry=registry)(index_source)
    kopf.on.event(*configmaps, id="source-changed", labels=source_labels, registry=registry)(
        on_source
    )
