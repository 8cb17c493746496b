"""The agent's readiness server: ``GET /ready`` is the pod's readiness, ``GET /healthz`` its own.

The agent container's readinessProbe points at ``/ready``; a pod is Ready only when every
container is, so the pod takes traffic (and counts as available in a rolling update) only when
the agent says so. ``/healthz`` answers 200 while the agent's loop runs (its livenessProbe).
The port is the pod's, not the Service's: nothing outside the pod needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from smolserve.agent import DEFAULT_PORT

# (ready, why): why is one line, the answer's body (kubectl describe pod shows it on failure).
Verdict = Callable[[], tuple[bool, str]]


class ReadinessServer:
    """Serves ``/ready`` from ``verdict()`` and ``/healthz`` from ``alive()`` in a thread."""

    def __init__(
        self,
        verdict: Verdict,
        alive: Callable[[], bool],
        port: int = DEFAULT_PORT,
        host: str = "0.0.0.0",
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/ready":
                    ok, why = outer.verdict()
                elif self.path == "/healthz":
                    ok = outer.alive()
                    why = "alive" if ok else "the agent's loop has stopped"
                else:
                    self._answer(404, "not found")
                    return
                self._answer(200 if ok else 503, why)

            def _answer(self, code: int, text: str) -> None:
                body = (text + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:  # probes every few seconds: no log
                return

        self.verdict = verdict
        self.alive = alive
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="agent-readiness", daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> ReadinessServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
