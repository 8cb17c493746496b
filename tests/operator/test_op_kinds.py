"""The one kind table and ``Ref`` (``smolserve/kinds.py``), and the operator's keyed locks."""

from __future__ import annotations

import threading

from smolserve.kinds import BY_KIND, CHILD_KINDS, Ref, creation_order
from smolserve.operator.runtime import KeyedLocks


def test_refs_name_the_api_paths() -> None:
    assert Ref("Deployment", "ai", "smol").path() == "/apis/apps/v1/namespaces/ai/deployments/smol"
    assert Ref("ConfigMap", "ai", "x").collection() == "/api/v1/namespaces/ai/configmaps"
    assert Ref("SmolServe", "ai", "smol").path("status") == (
        "/apis/smolserve.dev/v1alpha1/namespaces/ai/smolserves/smol/status"
    )
    assert Ref("Pod", None, "").collection() == "/api/v1/pods"
    assert str(Ref("Service", "ai", "smol")) == "Service ai/smol"


def test_every_child_kind_is_served_and_ordered_for_creation() -> None:
    assert set(CHILD_KINDS) <= set(BY_KIND)
    order = sorted(CHILD_KINDS, key=creation_order)
    assert order.index("Role") < order.index("Job")  # the Job's RBAC first
    # The Deployment after what its pods mount and the Service in front of them.
    assert order.index("ConfigMap") < order.index("Deployment")
    assert order.index("Service") < order.index("Deployment")
    assert creation_order("Unknown") == len(CHILD_KINDS)


def test_keyed_locks_serialize_one_key_and_leave_nothing_behind() -> None:
    locks = KeyedLocks()
    inside, order = threading.Event(), []

    def second() -> None:
        with locks.hold(("ns", "a")):
            order.append("second")

    with locks.hold(("ns", "a")):
        waiter = threading.Thread(target=second)
        waiter.start()
        inside.wait(0.1)
        order.append("first")
        with locks.hold(("ns", "b")):  # another key never waits
            pass
        assert len(locks) == 1
    waiter.join(5)
    assert order == ["first", "second"]
    assert len(locks) == 0
