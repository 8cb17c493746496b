"""The chart's Grafana dashboard: loading it, its queries, the series they name, and the checks
Grafana's dashboard schema makes.

The schema facts are those of Grafana's classic dashboard model (the one its provisioning and
sidecar load), written here as a JSON Schema of this project's own: a dashboard has a
``schemaVersion``; a panel a non-empty ``type`` and a ``gridPos`` with ``h`` > 0, 0 < ``w`` <= 24,
0 <= ``x`` < 24, ``y`` >= 0; a row panel an ``id`` and ``panels``; a template variable a ``name``
and one of Grafana's variable types; ``graphTooltip`` is 0, 1 or 2; an annotation query has a
name, a datasource, ``enable`` and ``iconColor``. Beyond the schema: panels on the 24-column grid
do not overlap, ids are unique, every ``$variable`` a query uses is defined.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from .helpers import CHART

DASHBOARD = CHART / "dashboards" / "smolserve.json"
# PromQL series names: vLLM's carry a colon (vllm:...), the operator's start with smolserve_.
SERIES = re.compile(r"\b(vllm:[a-z0-9_:]+|smolserve_[a-z0-9_]+|process_[a-z0-9_]+)")
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}

_POS = {"type": "integer", "minimum": 0}
_GRID = {
    "type": "object",
    "required": ["h", "w", "x", "y"],
    "properties": {
        "h": {"type": "integer", "minimum": 1},
        "w": {"type": "integer", "minimum": 1, "maximum": 24},
        "x": {"type": "integer", "minimum": 0, "maximum": 23},
        "y": _POS,
        "static": {"type": "boolean"},
    },
}
_DATASOURCE = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "uid": {"type": "string"}},
    "additionalProperties": False,
}
_PANEL = {
    "type": "object",
    "required": ["type", "id", "gridPos"],
    "properties": {
        "type": {"type": "string", "minLength": 1},
        "id": _POS,
        "title": {"type": "string"},
        "description": {"type": "string"},
        "datasource": _DATASOURCE,
        "gridPos": _GRID,
        "targets": {"type": "array", "items": {"type": "object", "required": ["refId"]}},
        "options": {"type": "object"},
        "fieldConfig": {
            "type": "object",
            "required": ["defaults", "overrides"],
            "properties": {"defaults": {"type": "object"}, "overrides": {"type": "array"}},
        },
        "transformations": {"type": "array"},
        "repeatDirection": {"enum": ["h", "v"]},
        "transparent": {"type": "boolean"},
    },
}
_ROW = {
    "type": "object",
    "required": ["type", "id", "panels"],
    "properties": {
        "type": {"const": "row"},
        "id": _POS,
        "collapsed": {"type": "boolean"},
        "title": {"type": "string"},
        "gridPos": _GRID,
        "panels": {"type": "array", "items": _PANEL},
    },
}
_VARIABLE = {
    "type": "object",
    "required": ["type", "name"],
    "properties": {
        "type": {
            "enum": [
                "query",
                "adhoc",
                "constant",
                "datasource",
                "interval",
                "textbox",
                "custom",
                "system",
            ]
        },
        "name": {"type": "string", "minLength": 1},
        "label": {"type": "string"},
        "hide": {"enum": [0, 1, 2]},
        "skipUrlSync": {"type": "boolean"},
        "datasource": _DATASOURCE,
        "query": {"type": ["string", "object"]},
        "description": {"type": "string"},
    },
}
_ANNOTATION = {
    "type": "object",
    "required": ["name", "datasource", "enable", "iconColor"],
    "properties": {
        "name": {"type": "string"},
        "datasource": _DATASOURCE,
        "enable": {"type": "boolean"},
        "hide": {"type": "boolean"},
        "iconColor": {"type": "string"},
    },
}
SCHEMA = {
    "type": "object",
    "required": ["schemaVersion", "title", "uid", "panels"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "editable": {"type": "boolean"},
        "graphTooltip": {"enum": [0, 1, 2]},
        "schemaVersion": {"type": "integer", "minimum": 0, "maximum": 65535},
        "version": _POS,
        "timezone": {"type": "string"},
        "refresh": {"type": ["string", "boolean"]},
        "time": {
            "type": "object",
            "required": ["from", "to"],
            "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
        },
        "timepicker": {"type": "object"},
        "links": {"type": "array"},
        "annotations": {
            "type": "object",
            "properties": {"list": {"type": "array", "items": _ANNOTATION}},
        },
        "templating": {
            "type": "object",
            "properties": {"list": {"type": "array", "items": _VARIABLE}},
        },
        "panels": {
            "type": "array",
            "items": {
                "if": {"properties": {"type": {"const": "row"}}},
                "then": _ROW,
                "else": _PANEL,
            },
        },
    },
}


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: the panels' targets and the query variables'."""
    found = [t["expr"] for p in panels(dashboard) for t in p.get("targets") or [] if "expr" in t]
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        query = variable.get("query")
        if variable.get("type") == "query":
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


def series(dashboard: dict[str, Any], prefix: str) -> set[str]:
    """The sample names the queries read that start with ``prefix`` (``vllm:``, ``smolserve_``)."""
    return {
        name for q in queries(dashboard) for name in SERIES.findall(q) if name.startswith(prefix)
    }


def schema_errors(dashboard: dict[str, Any]) -> list[str]:
    from jsonschema import Draft202012Validator

    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in Draft202012Validator(SCHEMA).iter_errors(dashboard)
    ]


def layout_errors(dashboard: dict[str, Any]) -> list[str]:
    """Unique panel ids, panels inside the 24 columns, and no two panels on the same cell."""
    errors, taken = [], {}
    ids = [p["id"] for p in panels(dashboard)]
    if len(ids) != len(set(ids)):
        errors.append(f"panel ids repeat: {ids}")
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        if pos["x"] + pos["w"] > 24:
            errors.append(f"panel {panel['id']} ends past column 24")
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                if (x, y) in taken:
                    errors.append(f"panels {taken[x, y]} and {panel['id']} overlap at {(x, y)}")
                taken[x, y] = panel["id"]
    return errors


def undefined_variables(dashboard: dict[str, Any]) -> set[str]:
    defined = {v["name"] for v in (dashboard.get("templating") or {}).get("list") or []}
    text = json.dumps(dashboard["panels"]) + " ".join(queries(dashboard))
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    return used - defined - GRAFANA_VARIABLES


def sample_names(metrics_text: str) -> set[str]:
    """The names a Prometheus exposition holds: its samples' (``_bucket``, ``_total`` ...) and,
    for a family without samples yet (a gauge with no series), the family's."""
    from prometheus_client.parser import text_string_to_metric_families

    families = list(text_string_to_metric_families(metrics_text))
    return {s.name for f in families for s in f.samples} | {
        f.name for f in families if not f.samples
    }
