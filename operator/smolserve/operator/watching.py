"""A watch stream that never ends: list, then watch, again after every failure.

It reads through kopf's own watch client (kopf 1.45's ``infinite_watch``; not part of kopf's
public API, hence this one module around it): kopf's credentials and connection settings,
the label selectors of ``settings.watching``, bookmarks, resumption from the last
resourceVersion and a fresh list after "410 Gone". What kopf leaves to its caller is done
here: a failed stream (a refused list, a watch ERROR event, the API away) is logged and
started again after a growing pause, so a watch outlives any API outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from kopf._cogs.clients import watching as kopf_watching
from kopf._cogs.structs import references

from smolserve.kinds import Resource

logger = logging.getLogger(__name__)

# Pauses before a failed stream is started again (the last one repeats).
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
# The end of a (re)list: every object listed has been yielded before it.
LISTED = "LISTED"


def _kopf_resource(resource: Resource) -> references.Resource:
    return references.Resource(
        group=resource.group,
        version=resource.version,
        plural=resource.plural,
        kind=resource.kind,
        namespaced=resource.namespaced,
    )


async def watch(
    settings: Any, resource: Resource, namespace: str | None
) -> AsyncIterator[dict[str, Any] | str]:
    """The events of ``resource`` in ``namespace`` (None: cluster-wide), as the API sends
    them (a listed object's type is None), with ``LISTED`` after each list."""
    target = _kopf_resource(resource)
    where = f"in {namespace}" if namespace else "cluster-wide"
    failures = 0
    while True:
        try:
            async for raw in kopf_watching.infinite_watch(
                settings=settings, resource=target, namespace=namespace
            ):
                if raw is kopf_watching.Bookmark.LISTED:
                    failures = 0
                    yield LISTED
                elif isinstance(raw, dict) and raw.get("type") != "BOOKMARK":
                    yield raw
        except Exception as exc:  # any failure of the stream: the API's, the network's
            pause = BACKOFF[min(failures, len(BACKOFF) - 1)]
            failures += 1
            logger.warning(
                "watching %s %s failed (%s: %s); again in %g s",
                resource.plural,
                where,
                type(exc).__name__,
                exc,
                pause,
            )
            await asyncio.sleep(pause)
