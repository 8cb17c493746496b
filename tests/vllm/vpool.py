"""One real vLLM server at a time, built from the operator's own Deployment for a SmolServe."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vstack import (
    ADAPTERS_MOUNT,
    AGENT_RUN_MOUNT,
    GUARD_MOUNT,
    MODELS_MOUNT,
    PARSERS_MOUNT,
    TEMPLATE_MOUNT,
    VllmServer,
    free_port,
    server_command,
    server_env,
)

SERVED_NAME = "smollm3"
ADAPTER_NAME = "tiny-sql"


@dataclass(frozen=True)
class ServerKey:
    """What a server serves: the mounted template's variant, the reasoning parser, the tokenizer
    flavour, LoRA, and whether requests may bring their own template (a test-only flag, which
    lets one server run a parser's cells for every variant)."""

    variant: str
    parser: str
    tags_special: bool = False
    lora: bool = False
    request_templates: bool = False
    # Only the operator's args and the CPU flags: no test-only flag that changes what users get
    # (FORCE_IN_REASONING), as in production (the smoke battery's servers).
    production: bool = False
    # A deliberately broken template made from the variant's (`BROKEN_TEMPLATES`).
    broken: str | None = None

    @property
    def name(self) -> str:
        return "-".join(
            [self.variant, self.parser]
            + ["special"] * self.tags_special
            + ["lora"] * self.lora
            + ["any-template"] * self.request_templates
            + ["production"] * self.production
            + ([self.broken] if self.broken else [])
        )


@dataclass
class Assets:
    root: Path
    models: Path  # mapped to /models/: tiny (tags plain), tiny-special (tags special)
    adapters: Path  # mapped to /adapters/: <ADAPTER_NAME>/

    def model_dir(self, tags_special: bool) -> Path:
        return self.models / ("tiny-special" if tags_special else "tiny")


def serve_object(key: ServerKey) -> dict[str, Any]:
    """The SmolServe a test server stands for."""
    spec: dict[str, Any] = {
        "model": {
            "pvc": {
                "claimName": "models",
                "path": "tiny-special" if key.tags_special else "tiny",
            }
        },
        "servedModelName": SERVED_NAME,
        "template": {"source": "generate", "variant": key.variant},
        "parsers": {"reasoning": key.parser},
    }
    if key.lora:
        spec["lora"] = {
            "adapters": [{"name": ADAPTER_NAME, "source": f"pvc://adapters/{ADAPTER_NAME}"}],
            "maxRank": 8,
            "mode": "static",
        }
    return {
        "apiVersion": "smolserve.dev/v1alpha1",
        "kind": "SmolServe",
        "metadata": {"name": "smol", "namespace": "default", "uid": "test-uid"},
        "spec": spec,
    }


def template_text(model_dir: Path, variant: str, broken: str | None = None) -> str:
    """The chat template the operator's Job would publish for this variant (broken on purpose
    by `BROKEN_TEMPLATES[broken]` when given)."""
    from smolserve.template import generate_template, load_tokenizer

    text = generate_template(load_tokenizer(str(model_dir)), variant).text
    return BROKEN_TEMPLATES[broken](text) if broken else text


def drop_tool_calls(template: str) -> str:
    """The template without the loop that renders an assistant's `tool_calls` (a user's
    template that loses tool calls from history, while still wrapping tool results)."""
    loop = re.compile(
        r"\{%-? for tool_call in message\.tool_calls -?%\}.*?\{%-? endfor -?%\}", re.S
    )
    edited, count = loop.subn("", template)
    assert count == 1, "the template has no (single) tool_calls loop to drop"
    return edited


BROKEN_TEMPLATES = {"drop-tool-calls": drop_tool_calls}


def prepare_server(
    assets: Assets,
    serve: dict[str, Any],
    port: int,
    name: str,
    extra_flags: list[str] | None = None,
    *,
    force_in_reasoning: bool = True,
    broken: str | None = None,
    host: str = "127.0.0.1",
) -> VllmServer:
    """Build the Deployment for the SmolServe `serve`, lay out its mounts under the assets
    directory (the template its Job would publish, the parser ConfigMap's files, the adapter
    guard's and the agent's run directory in dynamic LoRA mode), and return the server, not yet
    started, with the vLLM container's own environment."""
    from smolserve.manifests import build_deployment, build_parser_configmap
    from smolserve.manifests.common import OperatorConfig, sha256_hex
    from smolserve.manifests.lora import build_guard_configmap
    from smolserve.spec import load_spec

    spec = load_spec(serve)
    assert spec.model.pvc is not None and spec.template.variant is not None
    config = OperatorConfig()
    work = assets.root / "servers" / name
    template_dir, parsers_dir = work / "template", work / "parsers"
    template_dir.mkdir(parents=True, exist_ok=True)
    parsers_dir.mkdir(parents=True, exist_ok=True)
    template = template_text(assets.models / spec.model.pvc.path, spec.template.variant, broken)
    (template_dir / "chat_template.jinja").write_text(template, encoding="utf-8")
    for filename, text in build_parser_configmap(spec, config)["data"].items():
        (parsers_dir / filename).write_text(text, encoding="utf-8")
    guard_dir, run_dir = work / "guard", work / "run"
    guard_dir.mkdir(exist_ok=True)
    run_dir.mkdir(exist_ok=True)
    for filename, text in build_guard_configmap(spec, config)["data"].items():
        (guard_dir / filename).write_text(text, encoding="utf-8")
    sha = sha256_hex(template)
    deployment = build_deployment(
        spec, config, template_configmap=f"smol-chat-template-{sha[:8]}", template_hash=sha[:8]
    )
    mounts = {
        TEMPLATE_MOUNT: template_dir,
        PARSERS_MOUNT: parsers_dir,
        MODELS_MOUNT: assets.models,
        ADAPTERS_MOUNT: assets.adapters,
        GUARD_MOUNT: guard_dir,
        AGENT_RUN_MOUNT: run_dir,
    }
    return VllmServer(
        command=server_command(
            deployment,
            mounts,
            port,
            extra_flags or [],
            force_in_reasoning=force_in_reasoning,
            host=host,
        ),
        port=port,
        log_path=work / "server.log",
        model_name=spec.served_model_name,
        env=server_env(deployment, mounts),
    )


class ServerPool:
    """Runs at most one server; asking for another key stops the current one first."""

    def __init__(self, assets: Assets) -> None:
        self.assets = assets
        self.current: tuple[ServerKey, VllmServer] | None = None
        self.startup_s: dict[ServerKey, float] = {}

    def get(self, key: ServerKey) -> VllmServer:
        if self.current is not None and self.current[0] == key:
            return self.current[1]
        self.close()
        flags = ["--trust-request-chat-template"] if key.request_templates else []
        server = prepare_server(
            self.assets,
            serve_object(key),
            free_port(),
            key.name,
            flags,
            force_in_reasoning=not key.production,
            broken=key.broken,
        )
        server.start()
        assert server.startup_s is not None
        self.startup_s[key] = server.startup_s
        self.current = (key, server)
        return server

    def close(self) -> None:
        if self.current is not None:
            self.current[1].stop()
            self.current = None
