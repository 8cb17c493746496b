"""The chart's Grafana dashboard: JSON that Grafana's dashboard schema accepts, laid out on the
grid, and reading only series that exist: the operator's (from its registry) and vLLM 0.32's
(from the installed vLLM's own metric definitions here; against a real server's /metrics in the
vLLM tier, tests/vllm/test_vllm_stack.py)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from smolserve.manifests.autoscaling import VLLM_SERIES
from smolserve.operator.metrics import OperatorMetrics

from . import dashboard as dash
from .helpers import CHART, PROMETHEUS_API

SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def family(sample: str) -> str:
    for suffix in SUFFIXES:
        if sample.endswith(suffix):
            return sample[: -len(suffix)]
    return sample


def test_the_dashboard_is_json_that_grafana_accepts() -> None:
    board = dash.load()
    assert dash.schema_errors(board) == []
    assert dash.layout_errors(board) == []
    assert dash.undefined_variables(board) == set()
    assert all(
        p["datasource"]["uid"] == "${datasource}" for p in dash.panels(board) if p["type"] != "row"
    )


def test_the_checks_catch_what_grafana_refuses() -> None:
    """The checks are not vacuous: each refuses a dashboard Grafana would not load as meant."""
    board = dash.load()
    broken = json.loads(json.dumps(board))
    broken["panels"][1]["gridPos"]["w"] = 25
    broken["panels"][2]["type"] = ""
    broken["templating"]["list"][0]["type"] = "dropdown"
    del broken["schemaVersion"]
    assert len(dash.schema_errors(broken)) == 4
    overlapping = json.loads(json.dumps(board))
    overlapping["panels"][2]["gridPos"] = dict(overlapping["panels"][1]["gridPos"])
    assert dash.layout_errors(overlapping)
    undefined = json.loads(json.dumps(board))
    undefined["panels"][1]["targets"][0]["expr"] += " * $nowhere"
    assert dash.undefined_variables(undefined) == {"nowhere"}


def test_it_shows_what_the_issue_asks_for() -> None:
    vllm = {family(s) for s in dash.series(dash.load(), "vllm:")}
    assert {
        "vllm:request_success",  # requests
        "vllm:e2e_request_latency_seconds",  # latency percentiles
        "vllm:generation_tokens",  # tokens/s
        "vllm:num_requests_waiting",  # waiting requests
        "vllm:kv_cache_usage_perc",  # KV-cache use
    } <= vllm
    assert set(VLLM_SERIES.values()) <= vllm  # what the autoscalers read, on the board too
    operator = {family(s) for s in dash.series(dash.load(), "smolserve_")}
    assert {
        "smolserve_reconciles",
        "smolserve_rollouts_started",
        "smolserve_rollouts_finished",
    } <= operator


def test_every_operator_series_is_one_the_operator_exports() -> None:
    exported = dash.sample_names(generate_latest(OperatorMetrics().registry).decode())
    missing = dash.series(dash.load(), "smolserve_") - exported
    assert not missing, f"not exported by the operator: {missing}"


def test_every_vllm_series_is_one_vllm_defines() -> None:
    """Against the installed vLLM's (0.32) metric definitions, offline; a real server's
    /metrics is the vLLM tier's check."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or spec.origin is None:
        pytest.skip("vLLM is not installed here")
    sources = Path(spec.origin).parent / "v1" / "metrics"
    defined = set(
        re.findall(r'"(vllm:[a-z0-9_:]+)"', " ".join(p.read_text() for p in sources.rglob("*.py")))
    )
    names = dash.series(dash.load(), "vllm:") | set(VLLM_SERIES.values())
    missing = {n for n in names if family(n) not in defined}
    assert not missing, f"not defined by vLLM: {missing}"


def test_the_chart_ships_it_for_grafanas_sidecar(helm_template) -> None:
    assert not [o for o in helm_template() if o["metadata"]["name"].endswith("-dashboard")]
    objs = helm_template(CHART / "ci" / "observability-values.yaml", api_versions=[PROMETHEUS_API])
    (configmap,) = [
        o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "smol-dashboard"
    ]
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "smolserve"}
    assert json.loads(configmap["data"]["smolserve.json"]) == dash.load()
