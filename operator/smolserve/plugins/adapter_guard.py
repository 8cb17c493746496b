"""ASGI middleware for vLLM: only the pod's own smolserve agent may load or unload LoRA adapters.

vLLM serves its run-time adapter routes (``/v1/load_lora_adapter``, ``/v1/unload_lora_adapter``,
and the SageMaker-style ``POST /adapters``, ``DELETE /adapters/{name}``) on the same port as the
OpenAI API, so any client of the Service could change what the pod serves. This middleware
(``--middleware adapter_guard.AdapterGuard``, the file mounted from a ConfigMap and put on
``PYTHONPATH``) refuses every request to a path with one of those route names in it unless

- it comes from the pod's loopback (the agent reaches vLLM on ``127.0.0.1``), **and**
- it carries the pod's agent token in the ``X-Smolserve-Agent-Token`` header: the agent writes a
  random token to a file on a volume only the pod's containers share
  (``$SMOLSERVE_AGENT_TOKEN_FILE``); a service mesh's sidecar delivers every client's request
  from loopback too, so loopback alone proves nothing there.

It fails closed: no token file, an empty one, or a client address it cannot read → refused.
Every other request passes untouched. Stdlib only: the stock vLLM image imports it.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_FILE_ENV = "SMOLSERVE_AGENT_TOKEN_FILE"
TOKEN_HEADER = "x-smolserve-agent-token"
# A path with any of these segments manages adapters (vLLM's own routes and the SageMaker ones
# it registers through model_hosting_container_standards). No inference route has them.
MANAGEMENT_SEGMENTS = frozenset({"load_lora_adapter", "unload_lora_adapter", "adapters"})


def is_management_path(path: str) -> bool:
    """Whether ``path`` (as routed: decoded, any root path included) names an adapter route.

    Matching segments case-insensitively, ignoring empty ones, covers ``//v1/...``, a trailing
    slash (which the router would redirect) and case variants, whatever the router does.
    """
    return any(segment in MANAGEMENT_SEGMENTS for segment in path.casefold().split("/"))


def is_loopback(client: Any) -> bool:
    """Whether an ASGI ``client`` (host, port) is a loopback address (IPv4-mapped included)."""
    if not client:
        return False
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def read_token(path: str | None) -> bytes | None:
    """The agent's token, or None when it has not written one (yet)."""
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            token = handle.read().strip()
    except OSError:
        return None
    return token or None


def header(scope: Scope, name: str) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name.encode():
            return value
    return None


def refusal(scope: Scope) -> str | None:
    """Why this request may not manage adapters, or None when it may (or is not managing)."""
    if scope.get("type") not in ("http", "websocket"):
        return None
    if not is_management_path(str(scope.get("path") or "")):
        return None
    if not is_loopback(scope.get("client")):
        return "adapter management is reserved for the smolserve agent on the pod's loopback"
    expected = read_token(os.environ.get(TOKEN_FILE_ENV))
    given = header(scope, TOKEN_HEADER)
    if expected is None or given is None or not hmac.compare_digest(given.strip(), expected):
        return "adapter management needs the pod's smolserve agent token"
    return None


class AdapterGuard:
    """Pure ASGI middleware (vLLM adds a class with ``app.add_middleware``)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = refusal(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps(
            {"error": {"message": reason, "type": "Forbidden", "param": None, "code": 403}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
