"""The operator's API client (``operator/kube.py``): requests as the official client would send
them (URL, query, headers, JSON), errors as ``ApiError``, credentials reused for a while and read
again after a 401. Against a loopback stand-in that records what it receives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smolserve.kinds import Ref
from smolserve.operator import kube as kube_module
from smolserve.operator.kube import USER_AGENT, ApiError, Kube
from support.cluster import write_kubeconfig
from support.loopback import LoopbackServer, QuietHandler

TOKEN = "emulator"  # the token of support.cluster's kubeconfig


class Recorder(QuietHandler):
    """Answers every request from ``answers`` (status, body), the last one repeated, and keeps
    (method, path, headers, body) of each request in ``seen``."""

    seen: list[tuple[str, str, dict[str, str], Any]] = []
    answers: list[tuple[int, dict[str, Any]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        type(self).seen.append((self.command, self.path, headers, body))
        answers = type(self).answers
        status, payload = answers.pop(0) if len(answers) > 1 else answers[0]
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer


@pytest.fixture
def server() -> Any:
    Recorder.seen = []
    Recorder.answers = [(200, {"kind": "ConfigMap"})]
    server = LoopbackServer(Recorder)
    yield server
    server.close()


def client(server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kube:
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", server.url)))
    return Kube.from_environment(timeout=(2.0, 5.0))


def test_requests_carry_json_query_agent_and_token(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = client(server, tmp_path, monkeypatch)
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}}
    assert kube.create(obj) == {"kind": "ConfigMap"}
    kube.patch(Ref("ConfigMap", "ns", "a"), {"data": {"k": "ü"}})
    Recorder.answers = [(200, {"items": [{"kind": "ConfigMap"}]})]
    assert kube.list("ConfigMap", "ns", "a=b,c") == [{"kind": "ConfigMap"}]
    (post, patch, listing) = Recorder.seen
    assert post[:2] == ("POST", "/api/v1/namespaces/ns/configmaps") and post[3] == obj
    assert patch[2]["content-type"] == "application/merge-patch+json"
    assert patch[3] == {"data": {"k": "ü"}}
    assert listing[:2] == ("GET", "/api/v1/namespaces/ns/configmaps?labelSelector=a%3Db%2Cc")
    for _, _, headers, _ in Recorder.seen:
        assert headers["user-agent"] == USER_AGENT
        assert headers["authorization"] == f"Bearer {TOKEN}"
        assert headers["accept"] == "application/json"


def test_errors_are_api_errors_with_the_servers_words(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = client(server, tmp_path, monkeypatch)
    Recorder.answers = [(404, {"kind": "Status", "reason": "NotFound"})]
    assert kube.get(Ref("ConfigMap", "ns", "a")) is None
    conflict = {"kind": "Status", "reason": "AlreadyExists", "message": "configmaps a exists"}
    Recorder.answers = [(409, conflict)]
    with pytest.raises(ApiError) as caught:
        kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    assert (caught.value.status, caught.value.reason) == (409, "AlreadyExists")
    assert str(caught.value) == "configmaps a exists"


def test_credentials_are_reused_then_read_again_after_their_ttl_or_a_401(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = client(server, tmp_path, monkeypatch)
    configuration = kube._api.configuration
    reads: list[int] = []

    def rotating(config: Any) -> None:  # a credential source that hands out a new token each time
        reads.append(1)
        config.api_key["BearerToken"] = f"Bearer t{len(reads)}"

    configuration.refresh_api_key_hook = rotating
    ref = Ref("ConfigMap", "ns", "a")
    kube.get(ref)
    kube.get(ref)  # within the TTL: the headers read before
    Recorder.answers = [(401, {"kind": "Status", "reason": "Unauthorized"}), (200, {})]
    with pytest.raises(ApiError):
        kube.get(ref)
    kube.get(ref)  # after the 401: read again
    monkeypatch.setattr(kube_module, "CREDENTIALS_TTL", 0.0)
    kube.get(ref)  # past the TTL: read again
    tokens = [headers["authorization"] for _, _, headers, _ in Recorder.seen]
    assert tokens == ["Bearer t1", "Bearer t1", "Bearer t1", "Bearer t2", "Bearer t3"]
