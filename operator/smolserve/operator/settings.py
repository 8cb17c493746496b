"""kopf settings for the SmolServe operator."""

from __future__ import annotations

import kopf

from smolserve import labels
from smolserve.operator.handlers import CHILD_RESOURCES


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
    # Only our children: the API server filters what kopf watches (user ConfigMaps aside,
    # which a configMap template source needs).
    for kind, (group, _, plural) in CHILD_RESOURCES.items():
        if kind != "ConfigMap":
            settings.watching.label_selectors[group, plural] = labels.SERVE
    return settings
