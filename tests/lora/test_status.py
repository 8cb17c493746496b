"""Per-adapter status from the pods' reports (pure): counts, states, errors, condition, Events."""

from __future__ import annotations

from smolserve.agent.report import AdapterReport, PodReport
from smolserve.operator import adapters as ad
from smolserve.spec import load_spec
from support.factories import smolserve

SQL = {"name": "sql", "source": "hf://org/sql-lora@v1"}
CHAT = {"name": "chat", "source": "pvc://adapters/chat"}
NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"


def spec(*adapters, **lora):
    return load_spec(smolserve(spec={"lora": {"adapters": list(adapters), "maxLoras": 4, **lora}}))


def pod(name, ready=True, **adapters):
    return PodReport(
        pod=name,
        ready=ready,
        adapters={n: AdapterReport(*a) if isinstance(a, tuple) else a for n, a in adapters.items()},
    )


def by_name(findings):
    return {a.name: a for a in findings.adapters}


def test_counts_are_over_the_ready_pods():
    reports = {
        "p1": pod("p1", sql=(SQL["source"], "Ready")),
        "p2": pod("p2", sql=(SQL["source"], "Ready")),
        "p3": pod("p3", sql=(SQL["source"], "Loading")),
        "p4": pod("p4", ready=False, sql=(SQL["source"], "Ready")),  # not behind the Service
    }
    found = ad.adapter_findings(spec(SQL), reports, None, NOW)
    (sql,) = found.adapters
    assert (sql.state, sql.loaded_pods, sql.ready_pods) == ("Loading", 2, 3)
    assert sql.to_dict()["pods"] == "2/3"
    assert found.condition.reason == ad.ADAPTERS_LOADING
    assert found.condition.message == "loading: sql (2/3)"
    reports["p3"] = pod("p3", sql=(SQL["source"], "Ready"))
    found = ad.adapter_findings(spec(SQL), reports, [sql.to_dict()], LATER)
    assert by_name(found)["sql"].state == "Ready" and by_name(found)["sql"].since == LATER
    assert found.condition.status and found.condition.reason == ad.ADAPTERS_LOADED


def test_a_failure_on_any_pod_is_the_adapters_with_vllms_message_and_the_others_are_unaffected():
    message = "Call to add_lora method failed: LoRA rank 16 is greater than max_lora_rank 8."
    reports = {
        "p1": pod("p1", sql=(SQL["source"], "Failed", message), chat=(CHAT["source"], "Ready")),
        "p2": pod("p2", sql=(SQL["source"], "Ready"), chat=(CHAT["source"], "Ready")),
    }
    found = ad.adapter_findings(spec(SQL, CHAT), reports, None, NOW)
    sql, chat = by_name(found)["sql"], by_name(found)["chat"]
    assert (sql.state, sql.error, sql.to_dict()["pods"]) == ("Failed", message, "1/2")
    assert (chat.state, chat.error) == ("Ready", None)
    assert not found.condition.status and found.condition.reason == ad.ADAPTER_FAILED
    assert found.condition.message == f"sql: {message}"
    (event,) = [e for e in found.events if e.reason == ad.EVENT_FAILED]
    assert event.type == "Warning" and message in event.message


def test_a_report_of_another_source_counts_as_not_loaded():
    old = "hf://org/sql-lora@v0"
    reports = {
        "p1": pod("p1", sql=(old, "Ready")),
        "p2": pod("p2", sql=(old, "Failed", "gone")),  # an old failure is not the new source's
    }
    found = ad.adapter_findings(spec(SQL), reports, None, NOW)
    assert (found.adapters[0].state, found.adapters[0].loaded_pods) == ("Loading", 0)


def test_no_ready_pod_means_loading():
    found = ad.adapter_findings(spec(SQL), {}, None, NOW)
    assert found.adapters[0].state == "Loading" and found.adapters[0].to_dict()["pods"] == "0/0"


def test_adapters_beyond_max_loras_fail_in_words_and_are_never_sent_to_pods():
    found = ad.adapter_findings(
        spec(SQL, CHAT, maxLoras=1), {"p1": pod("p1", sql=(SQL["source"], "Ready"))}, None, NOW
    )
    chat = by_name(found)["chat"]
    assert chat.state == "Failed" and "spec.lora.maxLoras (1) reached" in chat.error
    assert by_name(found)["sql"].state == "Ready"


def test_events_mark_transitions_only():
    reports = {"p1": pod("p1", sql=(SQL["source"], "Ready"))}
    first = ad.adapter_findings(spec(SQL), reports, None, NOW)
    assert [e.reason for e in first.events] == [ad.EVENT_READY]
    again = ad.adapter_findings(spec(SQL), reports, first.status(), LATER)
    assert again.events == () and again.adapters[0].since == NOW  # steady: nothing new
    removed = ad.adapter_findings(spec(CHAT), {}, first.status(), LATER)
    assert [e.reason for e in removed.events] == [ad.EVENT_REMOVED]


def test_static_mode_and_no_adapters_report_nothing():
    assert ad.adapter_findings(spec(SQL, mode="static"), {}, None, NOW) is None
    assert ad.adapter_findings(spec(), {}, None, NOW) is None
