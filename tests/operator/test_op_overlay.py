"""The write overlay and echo bookkeeping (``operator/overlay.py``), on its own."""

from __future__ import annotations

from typing import Any

from smolserve.kinds import Ref
from smolserve.operator.overlay import Overlay, resource_version

KEY = ("ns", "smol")


def obj(name: str, version: int, kind: str = "Service", **extra: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "resourceVersion": str(version), **extra}
    return {"kind": kind, "metadata": meta}


def test_a_write_the_cache_has_not_seen_is_laid_over_it() -> None:
    overlay = Overlay()
    old, new = obj("smol", 5), obj("smol", 9)
    overlay.record(KEY, Ref.of(new), new)
    assert overlay.objects(KEY, [old]) == [new]  # the watch still shows version 5
    assert overlay.objects(KEY, [obj("smol", 9)]) == [obj("smol", 9)]  # seen: record dropped
    assert len(overlay) == 0
    assert overlay.objects(KEY, [old]) == [old]  # nothing laid over any more


def test_a_created_object_shows_before_its_watch_event() -> None:
    overlay = Overlay()
    created = obj("smol", 3)
    overlay.record(KEY, Ref.of(created), created)
    assert overlay.objects(KEY, []) == [created]


def test_a_deletion_hides_the_object_until_the_cache_drops_it() -> None:
    overlay = Overlay()
    live = obj("old-template", 4, kind="ConfigMap")
    overlay.record(KEY, Ref.of(live), None)
    assert overlay.objects(KEY, [live]) == []
    assert overlay.objects(KEY, []) == [] and len(overlay) == 0
    overlay.record(KEY, Ref.of(live), None)
    assert overlay.echoed(KEY, live, deleted=True)
    assert len(overlay) == 0  # the watch cache shows it now: the record is dropped
    assert not overlay.echoed(KEY, live, deleted=True)  # forgotten once seen


def test_objects_being_deleted_count_as_gone() -> None:
    overlay = Overlay()
    going = obj("smol", 7, deletionTimestamp="2026-11-25T12:00:00Z")
    assert overlay.objects(KEY, [going, obj("other", 2)]) == [obj("other", 2)]


def test_an_event_is_an_echo_only_at_the_written_version() -> None:
    overlay = Overlay()
    written = obj("smol", 9)
    overlay.record(KEY, Ref.of(written), written)
    assert not overlay.echoed(KEY, obj("smol", 10))  # someone else changed it after us
    assert not overlay.echoed(KEY, obj("smol", 8))
    assert not overlay.echoed(("ns", "other"), obj("smol", 9))
    assert not overlay.echoed(KEY, obj("smol", 9), deleted=True)  # we wrote it, not deleted it
    assert len(overlay) == 1
    assert overlay.echoed(KEY, obj("smol", 9))
    assert len(overlay) == 0  # dropped: the watch cache holds the write now
    assert not overlay.echoed(KEY, obj("smol", 9))


def test_the_status_written_is_laid_over_until_the_watch_shows_it() -> None:
    overlay = Overlay()
    serve = {
        "kind": "SmolServe",
        "metadata": {"name": "smol", "resourceVersion": "4"},
        "status": {"phase": "Pending"},
    }
    overlay.record_status(KEY, {"phase": "Ready", "replicas": 1}, 5)  # the write's answer: 5
    seen = overlay.serve(KEY, serve)
    assert seen["status"] == {"phase": "Ready", "replicas": 1}
    assert serve["status"] == {"phase": "Pending"}  # the cached body is never changed
    caught_up = {**serve, "status": {"phase": "Ready", "replicas": 1, "kopf": {}}}
    assert overlay.serve(KEY, caught_up) is caught_up and len(overlay) == 0


def test_a_newer_version_than_the_status_write_is_the_truth() -> None:
    """Someone wrote after the operator (the watch shows version 6, past the write's 5):
    what the watch shows wins, even without the operator's status in it."""
    overlay = Overlay()
    overlay.record_status(KEY, {"phase": "Ready"}, 5)
    newer = {"kind": "SmolServe", "metadata": {"name": "smol", "resourceVersion": "6"}}
    assert overlay.serve(KEY, newer) is newer and len(overlay) == 0


def test_forget_drops_everything_kept_for_a_smolserve() -> None:
    overlay = Overlay()
    overlay.record(KEY, Ref("Service", "ns", "smol"), obj("smol", 1))
    overlay.record_status(KEY, {"phase": "Ready"}, 2)
    overlay.record(("ns", "other"), Ref("Service", "ns", "other"), obj("other", 1))
    overlay.forget(KEY)
    assert len(overlay) == 1
    assert overlay.objects(KEY, []) == []


def test_resource_versions_compare_as_numbers() -> None:
    assert resource_version(obj("a", 10)) > resource_version(obj("a", 9))
    assert resource_version({"metadata": {}}) == -1
