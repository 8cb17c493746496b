"""The report protocol both sides use: round trips, tolerance of foreign keys, patches."""

from __future__ import annotations

import pytest

from smolserve.agent.report import (
    FAILED,
    PASSED,
    AdapterReport,
    AgentConfig,
    DesiredAdapter,
    PodReport,
    ReportError,
    SmokeConfig,
    SmokeReport,
    config_data,
    read_config,
    read_reports,
    removal_patch,
    report_patch,
    seconds_between,
)


def test_a_report_round_trips_through_its_patch() -> None:
    report = PodReport(
        pod="smol-abc-1",
        uid="u1",
        pod_template_hash="0123456789",
        replicaset_hash="5d9f",
        ready=False,
        healthy_since="2026-01-01T00:00:00Z",
        smoke=SmokeReport(
            FAILED, check="no-think-answer", observed="content=None", failed=("no-think-answer",)
        ),
        adapters={"sql": AdapterReport("hf://o/r@v", "Ready", at="2026-01-01T00:00:01Z")},
        at="2026-01-01T00:00:02Z",
    )
    patch = report_patch(report)
    assert list(patch["data"]) == ["smol-abc-1"]
    reports, unreadable = read_reports(patch["data"])
    assert reports == {"smol-abc-1": report} and unreadable == []


def test_keys_that_hold_no_report_are_named_not_fatal() -> None:
    good = PodReport(pod="p", smoke=SmokeReport(PASSED)).to_json()
    data = {"p": good, "junk": "not json", "q": good, "r": '{"pod": "r", "smoke": {"state": "X"}}'}
    reports, unreadable = read_reports(data)
    assert list(reports) == ["p"]
    assert unreadable == ["junk", "q", "r"]  # q: a report under another pod's key


def test_removal_is_a_merge_patch_of_nulls() -> None:
    assert removal_patch(["b", "a"]) == {"data": {"a": None, "b": None}}


def test_the_config_round_trips_and_refuses_garbage() -> None:
    config = AgentConfig(SmokeConfig(90), (DesiredAdapter("sql", "pvc://c/p"),))
    assert read_config(config_data(config)) == config
    assert read_config(config_data(AgentConfig(None))).smoke is None
    with pytest.raises(ReportError):
        read_config({})
    with pytest.raises(ReportError):
        read_config({"agent.json": '{"smoke": {"timeoutSeconds": "soon"}}'})


def test_times_are_compared_across_offsets() -> None:
    assert seconds_between("2026-01-01T00:00:00Z", "2026-01-01T01:00:30+01:00") == 30
    assert seconds_between(None, "2026-01-01T00:00:00Z") is None
