"""kopf settings for the SmolServe operator, and the network timeouts it runs with."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import kopf

from smolserve import labels
from smolserve.kinds import CHILDREN, POD
from smolserve.manifests.common import SERVER
from smolserve.operator.runtime import SOURCE_LABEL

SERVER_PODS = f"{labels.COMPONENT}={SERVER}"

# kopf's default peering lifetime: a peer that has not refreshed its record for this long is
# taken for dead, and a paused standby takes over.
PEERING_LIFETIME = 60


@dataclass(frozen=True)
class Timeouts:
    """Every network timeout the operator uses, in seconds (docs/operator.md says why each).

    kopf 1.45 waits 5 minutes for a request and forever for a watch to be answered by default;
    the official client the reconcile writes with has no timeout at all. A hung connection
    then stalls a SmolServe (its reconcile holds the SmolServe's lock) or a whole watch.
    """

    # One API request (kopf's and the reconcile's own): kube-apiserver gives up on a request
    # after its --request-timeout, 60 s by default; an answer later than that never comes.
    request: float = 60.0
    # Establishing a connection, also for watches: the API server is one hop away.
    connect: float = 10.0
    # timeoutSeconds asked of the API server per watch: it ends the stream cleanly (after a
    # bookmark: kopf asks for them) and kopf resumes from the last resourceVersion.
    watch_server: float = 60.0
    # The client's own limit on one watch request, the server's plus 10 s: a stream that went
    # silent (a dead connection, a server or proxy that ignores timeoutSeconds) is cut and
    # resumed within 70 s, while the API server still keeps its events (about 75 s). This is
    # the stalled-watch fix, not kopf's inactivity timeout (``build_settings`` says why).
    watch_client: float = 70.0


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base, for an operator without change handlers: none.

    kopf builds the "essence" of every object on every watch event (a deep copy without its
    status and bookkeeping) and diffs it against the stored one, for change handlers only;
    with none registered it would be CPU spent on every event of every watched kind.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: kopf.Body) -> None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def build_settings(
    *,
    scanning: bool = True,
    timeouts: Timeouts | None = None,
    peering_lifetime: int = PEERING_LIFETIME,
) -> kopf.OperatorSettings:
    """kopf's settings: bookkeeping in status, only the Events we mean, server-side selectors,
    deliberate timeouts.

    ``scanning=False`` stops kopf from watching namespaces and CRDs for changes (the emulator
    answers neither; the operator's resources are known at start anyway).
    """
    timeouts = timeouts or Timeouts()
    settings = kopf.OperatorSettings()
    # The operator has no change handlers (handlers.py): kopf keeps no diff base and no
    # progress records, so it writes nothing to a SmolServe and diffs no event.
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.progress_storage = kopf.StatusProgressStorage()
    settings.posting.enabled = True  # the Events the operator posts itself (kopf.event)
    settings.posting.loggers = False  # not every log line
    settings.posting.reporting_component = labels.MANAGER
    settings.scanning.disabled = not scanning
    settings.peering.lifetime = peering_lifetime
    settings.networking.request_timeout = timeouts.request
    settings.networking.connect_timeout = timeouts.connect
    settings.watching.connect_timeout = timeouts.connect
    settings.watching.server_timeout = timeouts.watch_server
    settings.watching.client_timeout = timeouts.watch_client
    # kopf's inactivity timeout never fires: in kopf 1.45 its deadline also runs while the
    # watcher hands an event on, and when it expires there (starting the worker for an
    # object's first event) the cancellation ends the watcher without a word, and that kind
    # is never watched again. ``watch_client`` bounds a silent stream instead.
    settings.watching.inactivity_timeout = math.inf
    # The API server filters what is listed and watched (by kopf, and by the operator's own
    # watches: children.py): only the children, by their label,
    # and of the ConfigMaps only those labelled part-of=smolserve (the children, which carry
    # it too, and users' template sources) — never every ConfigMap in the cluster.
    for child in CHILDREN:
        selector = labels.SERVE if child.kind != "ConfigMap" else "=".join(SOURCE_LABEL)
        settings.watching.label_selectors[child.group, child.plural] = selector
    # Of the pods, only the SmolServes' vLLM pods (their agents report on them).
    settings.watching.label_selectors[POD.group, POD.plural] = f"{labels.SERVE},{SERVER_PODS}"
    return settings
