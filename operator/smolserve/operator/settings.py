"""kopf settings for the SmolServe operator."""

from __future__ import annotations

import kopf

from smolserve import labels
from smolserve.kinds import CHILDREN, POD
from smolserve.operator.runtime import SOURCE_LABEL

SERVER_PODS = f"{labels.COMPONENT}=server"


def build_settings(*, scanning: bool = True) -> kopf.OperatorSettings:
    """kopf's settings: bookkeeping in status, only the Events we mean, server-side selectors.

    ``scanning=False`` stops kopf from watching namespaces and CRDs for changes (the emulator
    answers neither; the operator's resources are known at start anyway).
    """
    settings = kopf.OperatorSettings()
    # kopf's own records live in status.kopf: they fold into the operator's status write
    # instead of costing a separate metadata patch.
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage()
    settings.persistence.progress_storage = kopf.StatusProgressStorage()
    settings.posting.enabled = True  # the Events the operator posts itself (kopf.event)
    settings.posting.loggers = False  # not every log line
    settings.posting.reporting_component = labels.MANAGER
    settings.scanning.disabled = not scanning
    # The API server filters what kopf lists and watches: only the children, by their label,
    # and of the ConfigMaps only those labelled part-of=smolserve (the children, which carry
    # it too, and users' template sources) — never every ConfigMap in the cluster.
    for child in CHILDREN:
        selector = labels.SERVE if child.kind != "ConfigMap" else "=".join(SOURCE_LABEL)
        settings.watching.label_selectors[child.group, child.plural] = selector
    # Of the pods, only the SmolServes' vLLM pods (their agents report on them).
    settings.watching.label_selectors[POD.group, POD.plural] = f"{labels.SERVE},{SERVER_PODS}"
    return settings
