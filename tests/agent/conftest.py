"""Fixtures for the agent's tests: the emulator (its API), and a stand-in for vLLM's /health."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `support` package

from support import EmulatedCluster
from support.loopback import LoopbackServer, QuietHandler


@pytest.fixture()
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path / "kubeconfig", controllers=False) as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        yield cluster


class Health(LoopbackServer):
    """Answers ``GET /health`` as vLLM does (200 or 503), as a test sets it. Only the health
    endpoint: the battery's requests go to a real vLLM in the vLLM tier (tests/vllm)."""

    def __init__(self) -> None:
        self.healthy = False
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                code = 200 if self.path == "/health" and outer.healthy else 503
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)


@pytest.fixture()
def health() -> Iterator[Health]:
    stand_in = Health()
    yield stand_in
    stand_in.close()
