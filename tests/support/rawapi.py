"""Raw HTTP against the emulator, for the realism tests: status code and decoded body."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class Api:
    """``api(method, path, body)`` → (status, body); ``api.lines(path)`` reads a watch."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=10) as rsp:
                return rsp.status, json.loads(rsp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def get(self, path: str) -> Any:
        code, body = self(path=path, method="GET")
        assert code == 200, (code, body)
        return body

    def lines(self, path: str) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url + path, timeout=10) as rsp:
            return [json.loads(line) for line in rsp.read().splitlines() if line.strip()]
