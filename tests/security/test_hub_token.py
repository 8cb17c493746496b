"""The hub token never leaves its Secret except into the containers' ``HF_TOKEN``: a sentinel
token goes in through every way a token enters (the SmolServe's ``model.tokenSecretRef``, a
``secretKeyRef`` in ``engine.env``, the operator's own environment, the template Job's and the
adapter fetchers' environment) and is looked for, raw and base64-encoded, in everything that
comes out: ``smolserve render``, the desired objects, the operator's debug log, every object
version the operator and the Job wrote (status, Events, ConfigMaps, Jobs), the template Job's
output and termination message, the static-LoRA init container's output, and the agent's log
and adapter reports. A hub stand-in that refuses every request (and echoes the credentials it
got in its error message) proves the token did reach the hub, so its absence means something.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smolserve.cli import main
from smolserve.manifests import OperatorConfig
from support.factories import PVC_MODEL, smolserve
from support.hub import RefusingHub
from support.loopback import LoopbackServer, QuietHandler
from support.running import wait_for
from support.world import NS, World

from .pods import bodies, desired_objects, workloads

SENTINEL = "hf_SENTINELtokenDoNotLeak7f3a9c2e1b5d"
SECRET = {"name": "hf-token", "key": "token"}
BEARER = f"Bearer {SENTINEL}"
VERBOSE_LOGGERS = ("", "kopf", "kopf.objects", "smolserve", "kubernetes", "urllib3")
pytestmark = pytest.mark.usefixtures("token_in_operator_env")


@pytest.fixture()
def token_in_operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's (and this process's) environment carries the token too: nothing may copy
    it from there into what the operator writes."""
    monkeypatch.setenv("HF_TOKEN", SENTINEL)


@pytest.fixture()
def verbose(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in VERBOSE_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    return caplog


def leaks(text: str) -> list[str]:
    """The forms of the sentinel found in ``text`` (raw, or as a Secret's data holds it)."""
    forms = {"raw": SENTINEL, "base64": base64.b64encode(SENTINEL.encode()).decode()}
    return [name for name, form in forms.items() if form in text]


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record, formatted, with its arguments and exception text."""
    lines = []
    for record in caplog.records:
        lines.append(f"{record.name} {record.getMessage()} {record.args!r}")
        if record.exc_info:
            lines.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(lines)


def hub_env(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in container.get("env") or [] if e["name"] == "HF_TOKEN"]


# --- what smolserve renders ------------------------------------------------------------------


def with_token(body: dict[str, Any]) -> dict[str, Any]:
    spec = body.setdefault("spec", {})
    spec.setdefault("model", {})["tokenSecretRef"] = dict(SECRET)
    return body


def test_the_desired_objects_carry_a_reference_never_the_value(
    operator_config: OperatorConfig,
) -> None:
    for name, body in bodies():
        objects = desired_objects(with_token(body), operator_config)
        assert leaks(json.dumps(objects)) == [], name
        for obj in workloads(objects):
            pod = obj["spec"]["template"]["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                where = f"{name}: {obj['kind']} container {container['name']}"
                # The agent reaches the hub only to download dynamic LoRA adapters.
                needs_hub = container["name"] != "agent" or "--adapters-dir" in container["args"]
                expected = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": SECRET}}]
                assert hub_env(container) == (expected if needs_hub else []), where


def test_render_prints_references_never_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMOLSERVE_TEMPLATE_JOB_IMAGE", raising=False)
    encoded = base64.b64encode(SENTINEL.encode()).decode()
    serve = smolserve(
        {
            "model": {"id": "HuggingFaceTB/SmolLM3-3B", "tokenSecretRef": SECRET},
            "lora": {"mode": "static", "adapters": [{"name": "sql", "source": "hf://o/sql@main"}]},
            "engine": {
                "env": [
                    {
                        "name": "HUGGING_FACE_HUB_TOKEN",
                        "valueFrom": {"secretKeyRef": SECRET},
                    }
                ]
            },
        },
        namespace="ai",
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hf-token", "namespace": "ai"},
        "data": {"token": encoded},
        "stringData": {"token": SENTINEL},
    }
    path = tmp_path / "stream.yaml"
    path.write_text(json.dumps(secret) + "\n---\n" + json.dumps(serve))
    assert main(["render", "-f", str(path)]) == 0
    out, err = capsys.readouterr()
    assert leaks(out + err) == []
    assert out.count("secretKeyRef") == 4  # vLLM (twice), the init container, the Job


# --- the operator, the template Job, the Events and the status --------------------------------


def secret_body(namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET["name"], "namespace": namespace},
        "data": {SECRET["key"]: base64.b64encode(SENTINEL.encode()).decode()},
    }


def everything_written(world: World) -> str:
    """Every version of every object the emulator stored (its watch history too), but the
    Secret itself."""

    def dump(emulator: Any) -> str:
        found = []
        for key, store in emulator.stores.items():
            if key == ("", "secrets"):
                continue
            found += list(store.objects.values()) + [obj for _, obj in store.history]
        return json.dumps(found)

    return world.cluster.call(dump)


def test_the_operator_and_the_template_job_never_write_the_token(
    world: World,
    hub: RefusingHub,
    verbose: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    world.core.create_namespaced_secret(NS, secret_body())
    # create → the template Job (the token in its environment) → the Deployment
    world.create({"model": {**PVC_MODEL, "tokenSecretRef": SECRET}})
    world.run_template()
    deployment = world.deployment()
    assert deployment is not None
    (vllm,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"
    ]
    assert hub_env(vllm) == [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": SECRET}}]
    world.ready()
    # → a template Job that fails: a private hub model, which the hub refuses
    jobs = world.job_names()
    world.patch_spec({"model": {"pvc": None, "id": "my-org/private-smollm3", "revision": "main"}})
    job = world.wait_job(jobs)
    code, message = world.kubelet.run_job(job)
    assert code != 0 and "my-org/private-smollm3" in message, message
    assert BEARER in hub.authorizations  # the token did reach the hub, and was refused
    # the failure went out through the status and an Event, with the Job's message
    wait_for(
        lambda: "private-smollm3" in world.condition("TemplateReady").get("message", ""),
        what="the failure in the status",
    )
    wait_for(
        lambda: [
            e
            for e in world.cluster.snapshot("events")
            if e.get("type") == "Warning" and "private-smollm3" in e.get("message", "")
        ],
        what="the failure's Warning Event",
    )

    out, err = capsys.readouterr()
    termination = "\n".join(p.read_text() for p in tmp_path.glob("*.termination-log"))
    found = {
        "operator and Job logs": leaks(logged(verbose)),
        "stdout and stderr": leaks(out + err),
        "termination messages": leaks(termination + message),
        "objects, status and Events": leaks(everything_written(world)),
    }
    assert found == {k: [] for k in found}
    assert len(verbose.records) > 100  # debug logging was on: kopf's own records are there
    secret_requests = [
        r.path for r in world.cluster.call(lambda e: list(e.log)) if "/secrets" in r.path
    ]
    assert len(secret_requests) == 1  # this test's own create: the operator never asked


# --- the pods' hub downloads: the static-LoRA init container and the agent -----------------


def test_the_adapter_init_container_never_prints_the_token(
    hub: RefusingHub,
    verbose: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code = main(["job", "fetch-adapters", "--dest", str(tmp_path), "sql=hf://my-org/sql@main"])
    out, err = capsys.readouterr()
    assert code != 0 and "my-org/sql" in err, err
    assert BEARER in hub.authorizations
    assert leaks(out + err + logged(verbose)) == []


class ModelList(LoopbackServer):
    """Answers vLLM's ``/v1/models`` with the base model alone (the agent asks before it loads
    anything); the adapter fails at the hub, before vLLM would be asked to load it."""

    def __init__(self) -> None:
        class Handler(QuietHandler):
            def do_GET(self) -> None:
                body = json.dumps({"data": [{"id": "smollm3", "root": "/m"}]}).encode()
                self.send_response(200 if self.path == "/v1/models" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


@pytest.fixture()
def model_list() -> Iterator[ModelList]:
    stand_in = ModelList()
    yield stand_in
    stand_in.close()


def test_the_agent_never_logs_or_reports_the_token(
    hub: RefusingHub,
    model_list: ModelList,
    verbose: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    from smolserve.agent.adapters import FAILED, AdapterApi, AdapterSync, write_token
    from smolserve.agent.report import DesiredAdapter, LoraConfig
    from smolserve.agent.vllm import VllmClient

    agent_token = write_token(tmp_path / "agent-token")  # the guard's per-pod token, too
    sync = AdapterSync(
        AdapterApi(VllmClient(model_list.url), agent_token), adapters_dir=str(tmp_path)
    )
    config = LoraConfig(
        adapters=(DesiredAdapter("sql", "hf://my-org/sql-lora@main"),),
        max_rank=16,
        base_model="HuggingFaceTB/SmolLM3-3B",
    )

    def failed() -> Any:
        sync.sync(config)
        report = sync.reports().get("sql")
        if report is not None and report.state == FAILED:
            return report
        time.sleep(0.1)
        return None

    try:
        report = wait_for(failed, timeout=30, what="the adapter to fail at the hub")
    finally:
        sync.close()
    assert "my-org/sql-lora" in (report.error or ""), report
    assert BEARER in hub.authorizations
    text = json.dumps({n: r.to_dict() for n, r in sync.reports().items()}) + logged(verbose)
    assert leaks(text) == []
    assert agent_token not in text


def test_the_kubelet_stand_in_refuses_a_missing_secret(world: World) -> None:
    """The way the token reaches the Job in these tests is the kubelet's: no Secret, no start."""
    world.create({"model": {**PVC_MODEL, "tokenSecretRef": SECRET}})
    job = world.wait_job()
    with pytest.raises(AssertionError, match="CreateContainerConfigError"):
        world.kubelet.run_job(job)
