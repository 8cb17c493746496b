"""A small HTTP stand-in on loopback, for tests that need a server's answers (vLLM's health,
the hub's refusals) without the server."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean (no access log lines)."""

    def log_message(self, *_: Any) -> None:
        return


class LoopbackServer:
    """``handler`` served on ``127.0.0.1`` (a free port, in ``url``) from a thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
