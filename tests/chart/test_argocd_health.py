"""examples/argocd/health.lua, run by a real Lua interpreter (lupa) the way Argo CD runs it: the
resource as the global `obj`, the script's return value as the health."""

from __future__ import annotations

from typing import Any

import lupa

from smolserve.operator import status as st

from .helpers import EXAMPLES

HEALTH_LUA = (EXAMPLES / "argocd" / "health.lua").read_text()


def health(obj: dict[str, Any]) -> dict[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)

    def to_lua(value: Any) -> Any:
        # Argo CD hands the object to Lua as nested tables; lists are 1-based sequences.
        if isinstance(value, dict):
            return lua.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([to_lua(v) for v in value])
        return value

    lua.globals().obj = to_lua(obj)
    result = lua.execute(HEALTH_LUA)
    return {"status": result["status"], "message": result["message"]}


def serve(
    *conditions: tuple[str, str, str], generation: int = 2, observed: int | None = 2
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "smolserve.dev/v1alpha1",
        "kind": "SmolServe",
        "metadata": {"name": "smol", "generation": generation},
    }
    status: dict[str, Any] = {
        "conditions": [
            {"type": t, "status": s, "reason": r, "message": f"{r} message"}
            for t, s, r in conditions
        ]
    }
    if observed is not None:
        status["observedGeneration"] = observed
    obj["status"] = status
    return obj


def test_no_status_is_progressing() -> None:
    obj = serve()
    del obj["status"]
    assert health(obj)["status"] == "Progressing"


AVAILABLE = (st.AVAILABLE, "True", st.DEPLOYMENT_AVAILABLE)


def test_available_is_healthy() -> None:
    h = health(serve(AVAILABLE, (st.DEGRADED, "False", st.AS_EXPECTED)))
    assert h == {
        "status": "Healthy",
        "message": f"{st.DEPLOYMENT_AVAILABLE}: {st.DEPLOYMENT_AVAILABLE} message",
    }


def test_degraded_wins_over_available() -> None:
    """A failed template Job leaves the old pods serving (Available) but must show."""
    h = health(serve(AVAILABLE, (st.DEGRADED, "True", st.TEMPLATE_JOB_FAILED)))
    assert h == {
        "status": "Degraded",
        "message": f"{st.TEMPLATE_JOB_FAILED}: {st.TEMPLATE_JOB_FAILED} message",
    }


def test_stale_generation_is_progressing() -> None:
    h = health(serve(AVAILABLE, generation=3, observed=2))
    assert h["status"] == "Progressing"
    assert "generation 3" in h["message"]


def test_missing_observed_generation_is_progressing() -> None:
    assert health(serve(AVAILABLE, observed=None))["status"] == "Progressing"


def test_rollout_in_progress() -> None:
    h = health(serve(AVAILABLE, (st.PROGRESSING, "True", st.ROLLING_OUT)))
    assert h["status"] == "Progressing"
    assert h["message"].startswith(st.ROLLING_OUT)


def test_unavailable_without_degraded_is_progressing() -> None:
    h = health(serve((st.AVAILABLE, "False", st.DEPLOYMENT_UNAVAILABLE)))
    assert h == {
        "status": "Progressing",
        "message": f"{st.DEPLOYMENT_UNAVAILABLE}: {st.DEPLOYMENT_UNAVAILABLE} message",
    }


def test_status_without_conditions() -> None:
    obj = serve()
    obj["status"]["conditions"] = []
    assert health(obj)["status"] == "Progressing"


def test_condition_without_message_uses_reason() -> None:
    obj = serve()
    obj["status"]["conditions"] = [
        {"type": st.DEGRADED, "status": "True", "reason": st.INVALID_SPEC}
    ]
    assert health(obj) == {"status": "Degraded", "message": st.INVALID_SPEC}
