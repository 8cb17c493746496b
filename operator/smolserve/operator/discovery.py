"""Which of the optional kinds (other projects' CRDs) this cluster serves, from API discovery.

KEDA's ``ScaledObject`` and the Inference Extension's ``InferencePool`` exist only where those
projects are installed. kopf looks at the served resources when it starts (and, with CRD
scanning on, again whenever a CRD changes), and watches only what it found; the operator must
write only what kopf watches, or it would never see its own objects. So ``ServedApis`` asks
discovery (``GET /apis/<group>/<version>``, which every authenticated client may read) once,
at the first reconcile (after kopf's own look), and again every ``refresh_seconds`` only when
kopf rescans too; without scanning (the chart's ``--no-scanning``) a newly installed project
is seen after an operator restart, as kopf sees it. A write that the API answers with 404
for an optional kind sends discovery again (the project may have been uninstalled).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from smolserve.kinds import OPTIONAL_CHILDREN, Resource
from smolserve.operator.kube import ApiError, Kube

logger = logging.getLogger("smolserve.operator")
REFRESH_SECONDS = 300.0


def served(kube: Kube, resource: Resource) -> bool:
    """Whether the API server serves ``resource`` at its group and version."""
    try:
        found = kube.request("GET", resource.prefix)
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return any(r.get("name") == resource.plural for r in found.get("resources") or [])


class ServedApis:
    """The optional kinds the cluster does not serve, discovered lazily; thread-safe."""

    def __init__(
        self,
        kube: Kube,
        *,
        refresh_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._refresh = refresh_seconds
        self._clock = clock
        self._guard = threading.Lock()
        self._unserved: frozenset[str] | None = None
        self._checked = 0.0

    def unserved(self) -> frozenset[str]:
        """The kinds of ``kinds.OPTIONAL_CHILDREN`` that this cluster does not serve."""
        with self._guard:
            due = self._unserved is None or (
                self._refresh is not None and self._clock() - self._checked >= self._refresh
            )
            if due:
                missing = frozenset(r.kind for r in OPTIONAL_CHILDREN if not served(self._kube, r))
                if missing != self._unserved:
                    logger.info(
                        "optional APIs not served: %s", ", ".join(sorted(missing)) or "none"
                    )
                self._unserved, self._checked = missing, self._clock()
            assert self._unserved is not None
            return self._unserved

    def recheck(self, resource: Resource) -> None:
        """A write of ``resource`` was answered 404: ask discovery whether it is still served
        (the namespace may be going instead), and remember the answer."""
        gone = not served(self._kube, resource)
        with self._guard:
            known = self._unserved or frozenset()
            self._unserved = known | {resource.kind} if gone else known - {resource.kind}
        if gone:
            logger.info("%s is no longer served", resource.kind)
