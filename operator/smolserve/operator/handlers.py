"""The kopf handlers: what triggers a reconcile, and the indexes it reads. Thin by design.

Every trigger runs the same ``Reconciler.reconcile`` for one SmolServe:

- the SmolServe is created, changed, or found at start-up (kopf's create/update/resume);
- one of its children changes (everything labelled ``smolserve.dev/serve=<name>``), unless
  the event only shows the operator's own last write;
- the user's template-source ConfigMap changes (ConfigMaps labelled
  ``app.kubernetes.io/part-of=smolserve`` without the serve label).

Index functions are async and do no I/O (no thread hop per watch event); the reconcile does
I/O and runs in a thread. kopf retries the SmolServe's own handlers itself; the other triggers
retry here, with growing pauses, for as long as the API keeps failing: giving up would leave
the SmolServe unreconciled until its next event, which may never come.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Mapping
from typing import Any

import kopf

from smolserve import labels
from smolserve.kinds import CHILDREN, SMOLSERVE
from smolserve.operator.kube import ApiError
from smolserve.operator.overlay import Key
from smolserve.operator.runtime import (
    SERVES_INDEX,
    SOURCE_LABEL,
    SOURCES_INDEX,
    Reconciler,
    children_index,
    text_hashes,
)

logger = logging.getLogger("smolserve.operator")

# Seconds between retries of a reconcile that a child's or a source's event triggered; the
# last one repeats (a deleted SmolServe ends the retries: its reconcile is then a no-op).
RETRY_DELAYS = (1, 2, 5, 10, 30, 60)
# Seconds before kopf runs the SmolServe's own handler again after an API error.
HANDLER_RETRY_DELAY = 5


def retry_delay(exc: ApiError, planned: float) -> float:
    """The pause before the next try: the planned one, or longer if the server asked."""
    return max(planned, exc.retry_after or 0.0)


async def reconcile_with_retries(
    reconciler: Reconciler, key: Key, indexes: Mapping[str, Any]
) -> None:
    """Reconcile in a thread; on an API error, try again after a pause, until it succeeds."""
    for attempt in itertools.count():
        try:
            await asyncio.to_thread(reconciler.reconcile, key, indexes)
            return
        except ApiError as exc:
            delay = retry_delay(exc, RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
            logger.warning("reconciling %s/%s failed (%s); retrying in %g s", *key, exc, delay)
            await asyncio.sleep(delay)


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    """Register every handler into ``registry`` (one registry per operator, or per test)."""
    serve_resource = (SMOLSERVE.group, SMOLSERVE.version, SMOLSERVE.plural)
    labelled = {labels.SERVE: kopf.PRESENT}

    async def index_serve(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
        return {(namespace, name): dict(body)}

    kopf.index(*serve_resource, id=SERVES_INDEX, registry=registry)(index_serve)

    def on_serve(namespace: str, name: str, **kwargs: Any) -> None:
        try:
            reconciler.reconcile((namespace, name), kwargs, handler=True)
        except ApiError as exc:
            delay = retry_delay(exc, HANDLER_RETRY_DELAY)
            raise kopf.TemporaryError(str(exc), delay=delay) from exc

    for cause in (kopf.on.create, kopf.on.update, kopf.on.resume):
        cause(*serve_resource, id="reconcile", registry=registry)(on_serve)

    async def index_child(namespace: str, body: kopf.Body, **_: Any) -> dict:
        return {(namespace, body["metadata"]["labels"][labels.SERVE]): dict(body)}

    async def on_child(namespace: str, body: kopf.Body, **kwargs: Any) -> None:
        key = (namespace, body["metadata"]["labels"][labels.SERVE])
        if not reconciler.overlay.is_echo(key, body):
            await reconcile_with_retries(reconciler, key, kwargs)

    for child in CHILDREN:
        resource = (child.group, child.version, child.plural)
        index_id, event_id = children_index(child.kind), f"{child.kind.lower()}-changed"
        kopf.index(*resource, id=index_id, labels=labelled, registry=registry)(index_child)
        kopf.on.event(*resource, id=event_id, labels=labelled, registry=registry)(on_child)

    # The liveness endpoint (--liveness-port) reports these with its answer: what the
    # operator keeps per SmolServe and its threads, for leak checks from outside the process.
    kopf.on.probe(id="tracked", registry=registry)(lambda **_: reconciler.tracked())
    kopf.on.probe(id="threads", registry=registry)(lambda **_: threading.active_count())

    source_labels = {SOURCE_LABEL[0]: SOURCE_LABEL[1], labels.SERVE: kopf.ABSENT}

    async def index_source(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
        return {(namespace, name): text_hashes(body)}

    async def on_source(namespace: str, name: str, **kwargs: Any) -> None:
        for key in reconciler.referrers(namespace, name):
            await reconcile_with_retries(reconciler, key, kwargs)

    configmaps = ("", "v1", "configmaps")
    kopf.index(*configmaps, id=SOURCES_INDEX, labels=source_labels, registry=registry)(index_source)
    kopf.on.event(*configmaps, id="source-changed", labels=source_labels, registry=registry)(
        on_source
    )
