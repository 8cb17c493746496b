"""The adapter guard: vLLM's adapter routes only for the pod's agent (loopback and its token).

The middleware is tested in a real uvicorn server, as vLLM runs it, listening on every
address: a request to this machine's non-loopback address stands for a client of the Service.
The vLLM tier repeats the Service-path check on a real vLLM (tests/vllm/test_lora_dynamic.py).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from smolserve.plugins import adapter_guard as guard
from support.network import free_port, non_loopback_address

ROUTES = [
    ("POST", "/v1/load_lora_adapter"),
    ("POST", "/v1/unload_lora_adapter"),
    ("POST", "/adapters"),
    ("DELETE", "/adapters/sql"),
]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/load_lora_adapter",
        "/v1/unload_lora_adapter",
        "/adapters",
        "/adapters/sql",
        "//v1//load_lora_adapter/",
        "/V1/Load_LoRA_Adapter",
        "/prefix/v1/unload_lora_adapter",
    ],
)
def test_every_spelling_of_an_adapter_route_is_guarded(path):
    assert guard.is_management_path(path)


@pytest.mark.parametrize(
    "path", ["/v1/models", "/v1/chat/completions", "/health", "/metrics", "/v1/adapter"]
)
def test_inference_routes_are_not(path):
    assert not guard.is_management_path(path)


@pytest.mark.parametrize(
    ("client", "loopback"),
    [
        (("127.0.0.1", 1), True),
        (("127.0.0.6", 1), True),  # Istio's inbound source: loopback, hence the token
        (("::1", 1), True),
        (("::ffff:127.0.0.1", 1), True),
        (("10.0.0.7", 1), False),
        (("::ffff:10.0.0.7", 1), False),
        (("not-an-address", 1), False),
        (None, False),  # a unix socket: no address, refused
    ],
)
def test_loopback(client, loopback):
    assert guard.is_loopback(client) is loopback


def _scope(path: str, client, token: bytes | None = None) -> dict:
    headers = [(b"host", b"x")] + ([(b"x-smolserve-agent-token", token)] if token else [])
    return {"type": "http", "path": path, "client": client, "headers": headers}


def test_the_token_file_decides_on_loopback(tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    monkeypatch.setenv(guard.TOKEN_FILE_ENV, str(token_file))
    path, local = "/v1/load_lora_adapter", ("127.0.0.1", 5)
    assert "token" in guard.refusal(_scope(path, local, b"t0k"))  # no file yet: fail closed
    token_file.write_text("")
    assert "token" in guard.refusal(_scope(path, local, b""))  # an empty token is none
    token_file.write_text("t0k\n")
    assert guard.refusal(_scope(path, local, b"t0k")) is None
    assert "token" in guard.refusal(_scope(path, local, b"other"))
    assert "token" in guard.refusal(_scope(path, local))
    assert "loopback" in guard.refusal(_scope(path, ("10.1.2.3", 5), b"t0k"))
    assert guard.refusal(_scope("/v1/completions", ("10.1.2.3", 5))) is None
    monkeypatch.delenv(guard.TOKEN_FILE_ENV)
    assert "token" in guard.refusal(_scope(path, local, b"t0k"))


# --- in a real server ------------------------------------------------------------------------


class Server:
    """uvicorn on 0.0.0.0 serving a small app behind the guard; records what got through."""

    def __init__(self) -> None:
        import uvicorn

        self.reached: list[tuple[str, str]] = []

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            self.reached.append((scope["method"], scope["path"]))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        self.port = free_port()
        config = uvicorn.Config(
            guard.AdapterGuard(app), host="0.0.0.0", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def call(host: str, port: int, method: str, path: str, headers: dict | None = None):
    request = urllib.request.Request(
        f"http://{host}:{port}{path}", data=b"{}", method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    (tmp_path / "token").write_text("s3cret")
    monkeypatch.setenv(guard.TOKEN_FILE_ENV, str(tmp_path / "token"))
    with Server() as running:
        yield running


def test_through_the_service_every_adapter_route_is_refused(server):
    lan = non_loopback_address()
    token = {"X-Smolserve-Agent-Token": "s3cret"}
    for method, path in ROUTES:
        code, body = call(lan, server.port, method, path, token)  # even with the token
        assert code == 403, (method, path)
        assert json.loads(body)["error"]["message"].startswith("adapter management is reserved")
        # A forwarded-for header from outside is not believed (uvicorn trusts only loopback).
        code, _ = call(lan, server.port, method, path, {**token, "X-Forwarded-For": "127.0.0.1"})
        assert code == 403
    assert call(lan, server.port, "POST", "/v1/completions") == (200, "ok")
    assert server.reached == [("POST", "/v1/completions")]


def test_on_loopback_only_the_agent_token_manages_adapters(server):
    for method, path in ROUTES:
        assert call("127.0.0.1", server.port, method, path)[0] == 403  # a mesh's sidecar
        wrong = {"X-Smolserve-Agent-Token": "guess"}
        assert call("127.0.0.1", server.port, method, path, wrong)[0] == 403
        right = {"X-Smolserve-Agent-Token": "s3cret"}
        assert call("127.0.0.1", server.port, method, path, right) == (200, "ok")
    assert server.reached == ROUTES


def test_the_guard_imports_nothing_but_the_standard_library():
    """The stock vLLM image imports it from a ConfigMap: no smolserve, no third-party module."""
    import ast

    tree = ast.parse(Path(guard.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    import sys

    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
