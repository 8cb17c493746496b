"""The agent's client for its own pod's vLLM, over loopback (the pod's containers share a network).

Stdlib only (urllib): plain JSON requests, and Server-Sent Events for streamed completions.
Every call takes a timeout, so a caller with a deadline never waits past it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from smolserve.agent import DEFAULT_VLLM_URL

USER_AGENT = "smolserve-agent"


class VllmError(Exception):
    """vLLM answered with an error, or could not be reached; ``status`` is None for the latter."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class VllmClient:
    def __init__(self, base_url: str = DEFAULT_VLLM_URL, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _request(
        self, method: str, path: str, body: Any | None, extra: Mapping[str, str] | None = None
    ) -> urllib.request.Request:
        data = None if body is None else json.dumps(body).encode()
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(extra or {})}
        if data is not None:
            headers["Content-Type"] = "application/json"
        return urllib.request.Request(
            f"{self.base_url}{path}", data=data, headers=headers, method=method
        )

    def _open(
        self,
        method: str,
        path: str,
        body: Any | None,
        timeout: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        request = self._request(method, path, body, headers)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise VllmError(f"{method} {path}: HTTP {exc.code}: {detail}", exc.code) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise VllmError(f"{method} {path}: {reason}") from exc

    def get(self, path: str, timeout: float | None = None) -> Any:
        with self._open("GET", path, None, timeout) as response:
            return _json(response.read(), path)

    def post(self, path: str, body: Mapping[str, Any], timeout: float | None = None) -> Any:
        with self._open("POST", path, dict(body), timeout) as response:
            return _json(response.read(), path)

    def post_text(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> str:
        """POST JSON, the answer as text (vLLM's adapter routes answer plain text)."""
        with self._open("POST", path, dict(body), timeout, headers) as response:
            return response.read().decode("utf-8", errors="replace")

    def stream(
        self, path: str, body: Mapping[str, Any], timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """POST with ``stream: true``; the ``data:`` events until ``[DONE]``, decoded."""
        events: list[dict[str, Any]] = []
        try:
            with self._open("POST", path, {**body, "stream": True}, timeout) as response:
                for raw in response:
                    line = raw.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    payload = line[len("data:") :].strip()
                    if payload == "[DONE]":
                        break
                    events.append(_json(payload.encode(), path))
        except TimeoutError as exc:
            raise VllmError(f"POST {path}: the stream timed out") from exc
        return events

    def healthy(self, timeout: float = 2.0) -> bool:
        """Whether ``GET /health`` answers 200 (vLLM's own readiness signal)."""
        try:
            with self._open("GET", "/health", None, timeout) as response:
                return response.status == 200
        except VllmError:
            return False

    def models(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """``/v1/models``: the base model and every adapter (adapters carry a ``parent``)."""
        return list(self.get("/v1/models", timeout).get("data") or [])


def _json(data: bytes, path: str) -> Any:
    try:
        return json.loads(data or b"null")
    except ValueError as exc:
        raise VllmError(f"{path}: the answer is not JSON ({exc})") from exc
