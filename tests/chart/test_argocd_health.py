"""examples/argocd/health.lua, run by a real Lua interpreter (lupa) the way Argo CD runs it: the
resource as the global `obj`, the script's return value as the health."""

from __future__ import annotations

from typing import Any

import lupa

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


def test_ready_is_healthy() -> None:
    h = health(serve(("Ready", "True", "Serving"), ("Degraded", "False", "AsExpected")))
    assert h == {"status": "Healthy", "message": "Serving: Serving message"}


def test_available_is_healthy() -> None:
    assert health(serve(("Available", "True", "MinimumReplicas")))["status"] == "Healthy"


def test_degraded_wins_over_ready() -> None:
    """A failed template verification leaves the old pods serving (Ready) but must show."""
    h = health(serve(("Ready", "True", "Serving"), ("Degraded", "True", "TemplateVerifyFailed")))
    assert h == {
        "status": "Degraded",
        "message": "TemplateVerifyFailed: TemplateVerifyFailed message",
    }


def test_stale_generation_is_progressing() -> None:
    h = health(serve(("Ready", "True", "Serving"), generation=3, observed=2))
    assert h["status"] == "Progressing"
    assert "generation 3" in h["message"]


def test_missing_observed_generation_is_progressing() -> None:
    assert health(serve(("Ready", "True", "Serving"), observed=None))["status"] == "Progressing"


def test_rollout_in_progress() -> None:
    h = health(serve(("Ready", "True", "Serving"), ("Progressing", "True", "RollingOut")))
    assert h["status"] == "Progressing"
    assert h["message"].startswith("RollingOut")


def test_not_ready_without_degraded_is_progressing() -> None:
    h = health(serve(("Ready", "False", "PodsStarting")))
    assert h == {"status": "Progressing", "message": "PodsStarting: PodsStarting message"}


def test_status_without_conditions() -> None:
    obj = serve()
    obj["status"]["conditions"] = []
    assert health(obj)["status"] == "Progressing"


def test_condition_without_message_uses_reason() -> None:
    obj = serve()
    obj["status"]["conditions"] = [{"type": "Degraded", "status": "True", "reason": "NoGPU"}]
    assert health(obj) == {"status": "Degraded", "message": "NoGPU"}
