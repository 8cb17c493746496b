"""Dynamic LoRA (``lora.mode: dynamic``) in the pod: what the vLLM container and the agent need.

In dynamic mode vLLM starts with LoRA on and no adapter; each pod's agent loads the desired
set through vLLM's run-time LoRA API on loopback. The pod template depends only on what vLLM
must know at start (LoRA on, ``maxRank``, ``maxLoras``) and on the set of claims that hold
``pvc://`` adapters, never on adapter names, sources or revisions:

- ``/adapters/hub``: an emptyDir the agent downloads ``hf://`` adapters into (vLLM reads it);
- ``/adapters/pvc/<claim>``: each distinct claim, mounted once, read-only, into both; an
  adapter ``pvc://claim/path`` is loaded from ``/adapters/pvc/claim/path``;
- ``/run/smolserve``: a memory emptyDir where the agent writes the token the adapter guard
  (``plugins/adapter_guard.py``, mounted from its own ConfigMap at ``/etc/smolserve/guard``)
  requires on vLLM's adapter routes.

So adding an adapter on a claim no other adapter uses, or removing the last adapter on a
claim, rolls the pods (a volume appears or goes); everything else is applied at run time.
"""

from __future__ import annotations

from typing import Any

from smolserve.agent.report import DesiredAdapter, LoraConfig
from smolserve.manifests.common import (
    ADAPTER_GUARD_FILE,
    ADAPTERS_DIR,
    OperatorConfig,
    child_metadata,
    hub_token_env,
    sha256_hex,
)
from smolserve.spec import LoraAdapter, SmolServeSpec

GUARD_FILE = ADAPTER_GUARD_FILE
GUARD_DIR = "/etc/smolserve/guard"
GUARD_MIDDLEWARE = "adapter_guard.AdapterGuard"
GUARD_COMPONENT = "adapter-guard"  # app.kubernetes.io/component of the guard's ConfigMap
HUB_DIR = f"{ADAPTERS_DIR}/hub"
CLAIMS_DIR = f"{ADAPTERS_DIR}/pvc"  # claim_path and hub_dir are the agent's view of these
AGENT_RUN_DIR = "/run/smolserve"
TOKEN_FILE = f"{AGENT_RUN_DIR}/agent-token"
# The guard's own names for these (stdlib-only plugin: it cannot import this module).
TOKEN_FILE_ENV = "SMOLSERVE_AGENT_TOKEN_FILE"

HUB_VOLUME = "adapters"
RUN_VOLUME = "agent-run"
GUARD_VOLUME = "adapter-guard"


def guard_configmap_name(spec: SmolServeSpec, config: OperatorConfig) -> str:
    return f"{spec.name}-adapter-guard-{sha256_hex(config.adapter_guard)[:8]}"


def build_guard_configmap(spec: SmolServeSpec, config: OperatorConfig) -> dict[str, Any]:
    """Immutable ConfigMap ``<name>-adapter-guard-<sha8>`` with the guard middleware."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(spec, guard_configmap_name(spec, config), GUARD_COMPONENT),
        "immutable": True,
        "data": {GUARD_FILE: config.adapter_guard},
    }


def claim_volume(claim: str) -> str:
    """The volume name of a claim (claims are DNS subdomains; volume names DNS labels)."""
    return f"lora-pvc-{sha256_hex(claim)[:10]}"


def claims(spec: SmolServeSpec) -> list[str]:
    """The distinct claims of the admitted ``pvc://`` adapters, sorted."""
    admitted, _ = admitted_adapters(spec)
    return sorted({a.pvc.claim_name for a in admitted if a.kind == "pvc"})


def claim_path(adapter: LoraAdapter, adapters_dir: str = ADAPTERS_DIR) -> str:
    """Where a ``pvc://claim/path`` adapter is in the pod (``adapters_dir``: the agent's view
    of ``/adapters``, the same path in both containers)."""
    pvc = adapter.pvc
    return f"{adapters_dir}/pvc/{pvc.claim_name}/{pvc.path}".rstrip("/")


def hub_dir(adapters_dir: str = ADAPTERS_DIR) -> str:
    """Where the agent downloads ``hf://`` adapters (a hub cache: one directory per commit)."""
    return f"{adapters_dir}/hub"


def admitted_adapters(
    spec: SmolServeSpec,
) -> tuple[tuple[LoraAdapter, ...], tuple[LoraAdapter, ...]]:
    """(admitted, over the limit): the first ``maxLoras`` adapters in the spec's own order.

    vLLM itself would take more and evict the least recently used one, re-reading it from
    disk on the next request that names it; smolserve refuses the extra ones instead, in
    words, before anything is fetched. List order, not name order: appending an adapter to a
    full list never displaces a served one.
    """
    listed = spec.lora.in_listed_order()
    limit = spec.lora.max_loras
    return listed[:limit], listed[limit:]


def over_limit_message(spec: SmolServeSpec) -> str:
    limit = spec.lora.max_loras
    return (
        f"spec.lora.maxLoras ({limit}) reached: only the first {limit} adapters listed are "
        "loaded; raise maxLoras (this restarts the pods) or remove an adapter"
    )


def lora_config(spec: SmolServeSpec) -> LoraConfig | None:
    """What the agents load (the ``lora`` part of ``<name>-agent-config``); None unless dynamic.

    The admitted adapters by name and source (the agent finds ``pvc://`` ones under its claim
    mounts and downloads ``hf://`` ones into the hub volume); ``maxRank`` and the base model let
    it check an adapter before it asks vLLM to load it.
    """
    if not spec.lora.dynamic:
        return None
    admitted, _ = admitted_adapters(spec)
    return LoraConfig(
        adapters=tuple(DesiredAdapter(a.name, a.source) for a in admitted),
        max_rank=spec.lora.max_rank,
        base_model=spec.model.id,
    )


def dynamic_vllm_args(spec: SmolServeSpec) -> list[str]:
    """vLLM's flags for run-time loading: LoRA on, no adapter, the guard in front."""
    return [
        "--enable-lora",
        "--max-lora-rank", str(spec.lora.max_rank),
        "--max-loras", str(spec.lora.max_loras),
        "--middleware", GUARD_MIDDLEWARE,
    ]  # fmt: skip


def dynamic_vllm_env() -> list[dict[str, Any]]:
    """The run-time LoRA API on (guarded), the guard importable, and where its token is."""
    return [
        {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"},
        {"name": "PYTHONPATH", "value": GUARD_DIR},
        {"name": TOKEN_FILE_ENV, "value": TOKEN_FILE},
    ]


def dynamic_volumes(spec: SmolServeSpec, config: OperatorConfig) -> list[dict[str, Any]]:
    """The pod's volumes for dynamic LoRA (see the module docstring)."""
    volumes: list[dict[str, Any]] = [
        {"name": GUARD_VOLUME, "configMap": {"name": guard_configmap_name(spec, config)}},
        {"name": HUB_VOLUME, "emptyDir": {}},
        {"name": RUN_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
    ]
    volumes += [
        {
            "name": claim_volume(claim),
            "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
        }
        for claim in claims(spec)
    ]
    return volumes


def _claim_mounts(spec: SmolServeSpec) -> list[dict[str, Any]]:
    return [
        {"name": claim_volume(claim), "mountPath": f"{CLAIMS_DIR}/{claim}", "readOnly": True}
        for claim in claims(spec)
    ]


def vllm_mounts(spec: SmolServeSpec) -> list[dict[str, Any]]:
    """vLLM reads the adapters and the token; it writes neither."""
    return [
        {"name": GUARD_VOLUME, "mountPath": GUARD_DIR, "readOnly": True},
        {"name": HUB_VOLUME, "mountPath": HUB_DIR, "readOnly": True},
        {"name": RUN_VOLUME, "mountPath": AGENT_RUN_DIR, "readOnly": True},
        *_claim_mounts(spec),
    ]


def agent_mounts(spec: SmolServeSpec) -> list[dict[str, Any]]:
    """The agent downloads into the hub volume, writes the token, reads the claims."""
    return [
        {"name": HUB_VOLUME, "mountPath": HUB_DIR},
        {"name": RUN_VOLUME, "mountPath": AGENT_RUN_DIR},
        *_claim_mounts(spec),
    ]


def agent_env(spec: SmolServeSpec) -> list[dict[str, Any]]:
    """The hub token for downloads, and a writable hub home on the hub volume (the agent's
    root filesystem is read-only)."""
    return [{"name": "HF_HOME", "value": f"{HUB_DIR}/.home"}, *hub_token_env(spec)]


def agent_args() -> list[str]:
    return ["--adapter-token-file", TOKEN_FILE, "--adapters-dir", ADAPTERS_DIR]
