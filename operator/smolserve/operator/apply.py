"""Desired vs live: the merge patch that brings a child to its desired state, or nothing.

The operator owns the fields it sets and nothing else: the API server's defaults and other
controllers' fields stay. Like ``kubectl apply``, it remembers what it last applied (an
annotation holding the desired object's JSON), so a field removed from the desired object is
removed from the live one, and a list it changed is replaced even when the live list still
"contains" the new one. At steady state the patch is empty and nothing is written.
"""

from __future__ import annotations

import json
from typing import Any

from smolserve import labels

LAST_APPLIED = f"{labels.GROUP}/last-applied"
# What the operator applies of an object: never status, never the API server's metadata.
_APPLIED_META = ("labels", "annotations", "ownerReferences")


# Maps of resource quantities: the API server returns them in canonical form ("0.5" → "500m").
_QUANTITY_MAPS = ("limits", "requests")
# Fields the operator may stop setting without removing them, because another controller
# takes them over: an autoscaler owns a Deployment's replicas once autoscaling is on. Removing
# the field would reset it to the API server's default (1 replica) before the new owner acts.
RELEASED_WHEN_DROPPED: dict[str, frozenset[tuple[str, ...]]] = {
    "Deployment": frozenset({("spec", "replicas")}),
}


def _same_quantity(live: Any, desired: Any) -> bool:
    from kubernetes.utils.quantity import parse_quantity

    try:
        return parse_quantity(live) == parse_quantity(desired)
    except (ValueError, TypeError):
        return live == desired


def contains(live: Any, desired: Any, *, quantities: bool = False) -> bool:
    """True when ``live`` has every value of ``desired`` (live may carry more: defaults).

    ``quantities``: the values are resource quantities, equal when their amounts are.
    """
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            contains(live.get(k), v, quantities=quantities or k in _QUANTITY_MAPS)
            for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(lv, dv) for lv, dv in zip(live, desired, strict=True))
        )
    if quantities and live != desired and live is not None:
        return _same_quantity(live, desired)
    return live == desired


def applied_view(desired: dict[str, Any]) -> dict[str, Any]:
    """The part of a desired object the operator owns, with its last-applied annotation."""
    meta = desired.get("metadata", {})
    owned = {
        k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "metadata", "status")
    }
    owned["metadata"] = {k: meta[k] for k in _APPLIED_META if k in meta}
    record = json.dumps(owned, sort_keys=True, separators=(",", ":"))
    annotations = {**owned["metadata"].get("annotations", {}), LAST_APPLIED: record}
    owned["metadata"] = {**owned["metadata"], "annotations": annotations}
    return owned


def with_last_applied(desired: dict[str, Any]) -> dict[str, Any]:
    """The object to create: desired plus the record of what was applied."""
    view = applied_view(desired)
    meta = {**desired["metadata"], "annotations": view["metadata"]["annotations"]}
    return {**desired, "metadata": meta}


def _last_applied(live: dict[str, Any]) -> dict[str, Any]:
    raw = (live.get("metadata", {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        record = json.loads(raw) if raw else {}
    except ValueError:
        record = {}
    return record if isinstance(record, dict) else {}


def _diff(
    last: Any,
    desired: dict[str, Any],
    live: Any,
    quantities: bool = False,
    released: frozenset[tuple[str, ...]] = frozenset(),
    path: tuple[str, ...] = (),
) -> dict[str, Any]:
    last = last if isinstance(last, dict) else {}
    live = live if isinstance(live, dict) else {}
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if isinstance(value, dict) and isinstance(live.get(key), dict):
            in_quantities = quantities or key in _QUANTITY_MAPS
            sub = _diff(last.get(key), value, live[key], in_quantities, released, (*path, key))
            if sub:
                patch[key] = sub
        elif not contains(live.get(key), value, quantities=quantities) or (
            isinstance(value, list) and key in last and last[key] != value
        ):
            patch[key] = value
    for key in last:
        if key not in desired and key in live and (*path, key) not in released:
            patch[key] = None
    return patch


def merge_patch_for(desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch from ``live`` to ``desired`` (None when there is nothing to change).

    A field in ``RELEASED_WHEN_DROPPED`` that the desired object no longer sets is left as it
    is on the live object (and drops out of the last-applied record, so it stays unowned).
    """
    released = RELEASED_WHEN_DROPPED.get(desired.get("kind", ""), frozenset())
    patch = _diff(_last_applied(live), applied_view(desired), live, released=released)
    return patch or None
