"""A stand-in for the Hugging Face hub on loopback that refuses every request as unauthorized,
recording the ``Authorization`` header each one carried. Its error body echoes that header back
(as a misbehaving proxy might), so a test sees whether any error text smolserve writes carries
the token (huggingface_hub puts the body's message into its exception's text).

``point_hub_at(url, monkeypatch)`` sends huggingface_hub (and transformers through it) there:
the real clients, their real error handling; only the address changes, as ``HF_ENDPOINT`` does
for a process that sets it before importing them.
"""

from __future__ import annotations

import json

import pytest

from support.loopback import LoopbackServer, QuietHandler


class RefusingHub(LoopbackServer):
    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        outer = self

        class Handler(QuietHandler):
            def _refuse(self) -> None:
                auth = self.headers.get("Authorization")
                outer.authorizations.append(auth)
                body = json.dumps({"error": f"Invalid credentials: {auth}"}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = _refuse

        super().__init__(Handler)


def point_hub_at(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
