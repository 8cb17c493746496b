"""The in-cluster commands, run the way the kubelet would run them: the builders' container
arguments and environment, through ``smolserve.cli.main``, against the Kubernetes API emulator
(publish-template) or an offline hub cache (fetch-adapters)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from smolserve import labels
from smolserve.cli import main
from smolserve.errors import SmolserveError
from smolserve.jobs.publish import publish_configmap
from smolserve.manifests import (
    OperatorConfig,
    build_deployment,
    build_template_configmap,
    build_template_job,
    template_configmap_name,
)
from smolserve.manifests.common import sha256_hex
from smolserve.spec import load_spec
from support import EmulatedCluster, install_crds

UID = "0b5d6c1e-0000-4000-8000-000000000002"  # for the tests that need no cluster
CONFIG = OperatorConfig(job_image="example.org/smolserve-job:test")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from smolserve.testkit import build_tokenizer

    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def fixed_template(tokenizer_dir: Path) -> str:
    from smolserve.template import generate_template, load_tokenizer

    return generate_template(load_tokenizer(str(tokenizer_dir)), "fixed").text


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with EmulatedCluster(tmp_path / "kubeconfig") as running:
        monkeypatch.setenv("KUBECONFIG", str(running.kubeconfig))
        yield running


@pytest.fixture
def owner_uid(cluster: EmulatedCluster) -> str:
    """The uid of a SmolServe ``smol`` that exists in the cluster: the emulator garbage-collects
    a child whose owner does not exist, as the API server's collector would."""
    from kubernetes import client

    api_client = install_crds(cluster)
    created = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        labels.GROUP, labels.VERSION, "default", labels.PLURAL, serve({}, None)
    )
    return created["metadata"]["uid"]


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("SMOLSERVE_TERMINATION_LOG", str(path))
    return path


def serve(spec: dict[str, Any], uid: str | None = UID) -> dict[str, Any]:
    metadata = {"name": "smol", "namespace": "default"}
    if uid:
        metadata["uid"] = uid
    return {
        "apiVersion": labels.API_VERSION,
        "kind": labels.KIND,
        "metadata": metadata,
        "spec": spec,
    }


def play_kubelet(
    job: dict[str, Any], monkeypatch: pytest.MonkeyPatch, mounts: dict[str, Path]
) -> int:
    """Run the Job's container as the kubelet would: its args, its literal env, its mounts."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["smolserve"]
    for var in container["env"]:
        if "value" in var:
            monkeypatch.setenv(var["name"], var["value"])
    args = []
    for arg in container["args"]:
        for prefix, local in mounts.items():
            if arg.startswith(prefix):
                arg = str(local) + arg[len(prefix) :]
        args.append(arg)
    return main(args)


def configmaps(cluster: EmulatedCluster) -> list[dict[str, Any]]:
    return cluster.snapshot("configmaps", **{labels.SERVE: "smol"})


def test_publish_inline_template(
    cluster, owner_uid, monkeypatch, tokenizer_dir, fixed_template, termination_log
):
    spec = load_spec(
        serve(
            {
                "model": {"pvc": {"claimName": "models", "path": "tok"}},
                "template": {"source": "inline", "inline": fixed_template},
            },
            owner_uid,
        )
    )
    job = build_template_job(spec, CONFIG)
    assert play_kubelet(job, monkeypatch, {"/models/tok": tokenizer_dir}) == 0

    (cm,) = configmaps(cluster)
    sha = sha256_hex(fixed_template)
    assert cm["metadata"]["name"] == template_configmap_name("smol", sha)
    assert cm["data"] == {"chat_template.jinja": fixed_template}
    assert cm["immutable"] is True
    assert cm["metadata"]["labels"][labels.TEMPLATE_HASH] == sha[:8]
    assert cm["metadata"]["ownerReferences"][0]["uid"] == owner_uid
    assert not termination_log.exists()

    # The Deployment built for it mounts exactly that ConfigMap.
    dep = build_deployment(
        spec,
        CONFIG,
        template_configmap=cm["metadata"]["name"],
        template_hash=cm["metadata"]["labels"][labels.TEMPLATE_HASH],
    )
    volumes = dep["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["configMap"]["name"] == cm["metadata"]["name"]

    # Running the Job again (a retried pod) is a no-op.
    assert play_kubelet(job, monkeypatch, {"/models/tok": tokenizer_dir}) == 0
    assert len(configmaps(cluster)) == 1


def test_publish_generated_template(
    cluster, owner_uid, monkeypatch, tokenizer_dir, fixed_template, termination_log
):
    spec = load_spec(serve({"model": {"pvc": {"claimName": "models", "path": "tok"}}}, owner_uid))
    job = build_template_job(spec, CONFIG)
    assert play_kubelet(job, monkeypatch, {"/models/tok": tokenizer_dir}) == 0
    (cm,) = configmaps(cluster)
    assert cm["data"]["chat_template.jinja"] == fixed_template


@pytest.mark.parametrize("variant", ["seed", "stock"])
def test_publish_comparison_variants(
    cluster, owner_uid, monkeypatch, tokenizer_dir, termination_log, variant
):
    from smolserve.template import generate_template, load_tokenizer

    spec = load_spec(
        serve(
            {"model": {"pvc": {"claimName": "m", "path": "tok"}}, "template": {"variant": variant}},
            owner_uid,
        )
    )
    assert (
        play_kubelet(build_template_job(spec, CONFIG), monkeypatch, {"/models/tok": tokenizer_dir})
        == 0
    )
    (cm,) = configmaps(cluster)
    expected = generate_template(load_tokenizer(str(tokenizer_dir)), variant).text
    assert cm["data"]["chat_template.jinja"] == expected


def test_publish_configmap_source(
    cluster, owner_uid, monkeypatch, tmp_path, tokenizer_dir, fixed_template, termination_log
):
    source = tmp_path / "source"
    source.mkdir()
    (source / "mine.jinja").write_text(fixed_template)
    spec = load_spec(
        serve(
            {
                "model": {"pvc": {"claimName": "models", "path": "tok"}},
                "template": {
                    "source": "configMap",
                    "configMapRef": {"name": "t", "key": "mine.jinja"},
                },
            },
            owner_uid,
        )
    )
    job = build_template_job(spec, CONFIG)
    mounts = {"/models/tok": tokenizer_dir, "/etc/smolserve/source": source}
    assert play_kubelet(job, monkeypatch, mounts) == 0
    (cm,) = configmaps(cluster)
    assert cm["data"]["chat_template.jinja"] == fixed_template


def test_a_template_failing_verification_is_not_published(
    cluster, owner_uid, monkeypatch, tokenizer_dir, termination_log, capsys
):
    from smolserve.testkit.tokenizer import stock_template_text

    spec = load_spec(
        serve(
            {
                "model": {"pvc": {"claimName": "models", "path": "tok"}},
                "template": {"source": "inline", "inline": stock_template_text()},
            },
            owner_uid,
        )
    )
    assert (
        play_kubelet(build_template_job(spec, CONFIG), monkeypatch, {"/models/tok": tokenizer_dir})
        == 1
    )
    assert configmaps(cluster) == []
    message = termination_log.read_text()
    assert message.startswith("template failed verification: ")
    assert "tool-results" in message and "first: [" in message
    assert "\n" not in message and len(message.encode()) <= 4096
    assert message in capsys.readouterr().err


def test_an_inline_template_with_a_syntax_error_fails_once_with_its_line(
    cluster, owner_uid, monkeypatch, tokenizer_dir, termination_log
):
    spec = load_spec(
        serve(
            {
                "model": {"pvc": {"claimName": "models", "path": "tok"}},
                "template": {"source": "inline", "inline": "{% for m in messages %}\n{{ m }\n"},
            },
            owner_uid,
        )
    )
    job = build_template_job(spec, CONFIG)
    assert play_kubelet(job, monkeypatch, {"/models/tok": tokenizer_dir}) == 1
    assert configmaps(cluster) == []
    assert termination_log.read_text() == (
        "template failed verification: failed checks: renders x1; first: [template] renders: "
        "syntax error on line 2: unexpected '}'"
    )


def test_a_missing_tokenizer_fails_with_one_line(
    cluster, owner_uid, monkeypatch, tmp_path, termination_log
):
    spec = load_spec(serve({"model": {"pvc": {"claimName": "models", "path": "tok"}}}, owner_uid))
    job = build_template_job(spec, CONFIG)
    missing = tmp_path / "nothing-here"
    assert play_kubelet(job, monkeypatch, {"/models/tok": missing}) == 2  # the input is wrong
    message = termination_log.read_text()
    assert message == f"cannot load tokenizer from {missing}: no such directory"
    assert configmaps(cluster) == []


def test_publish_is_idempotent_and_refuses_a_different_text(cluster, owner_uid):
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=os.environ["KUBECONFIG"]))
    body = build_template_configmap(
        serve="smol", namespace="default", owner_uid=owner_uid, text="A", inputs_hash="0" * 64
    )
    assert publish_configmap(api, body) == body["metadata"]["name"]
    assert publish_configmap(api, body) == body["metadata"]["name"]
    tampered = {**body, "data": {"chat_template.jinja": "B"}}
    with pytest.raises(SmolserveError, match="exists with different content"):
        publish_configmap(api, tampered)


def test_a_predecessors_configmap_is_waited_out_never_taken_over(cluster, owner_uid):
    """A SmolServe deleted and re-created under its name: the old template ConfigMap (same
    content-addressed name, the old owner's uid) is not claimed; the Job waits for the garbage
    collector and publishes its own, or says which ConfigMap blocks it."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    api = client.CoreV1Api(api_client)
    # The predecessor: another SmolServe's uid (it exists, so the emulator's collector waits).
    predecessor = serve({}, None)
    predecessor["metadata"]["name"] = "gone"
    previous_uid = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        labels.GROUP, labels.VERSION, "default", labels.PLURAL, predecessor
    )["metadata"]["uid"]
    old = build_template_configmap(
        serve="smol", namespace="default", owner_uid=previous_uid, text="A", inputs_hash="1" * 64
    )
    mine = build_template_configmap(
        serve="smol", namespace="default", owner_uid=owner_uid, text="A", inputs_hash="2" * 64
    )
    api.create_namespaced_config_map("default", old)
    with pytest.raises(SmolserveError, match="still belongs to another owner"):
        publish_configmap(api, mine, wait_seconds=0.5)
    (cm,) = configmaps(cluster)
    assert cm["metadata"]["labels"][labels.INPUTS_HASH] == "1" * 8  # untouched

    name = old["metadata"]["name"]
    gone = threading.Timer(0.3, api.delete_namespaced_config_map, (name, "default"))
    gone.start()
    assert publish_configmap(api, mine, wait_seconds=10) == name
    gone.join()
    (cm,) = configmaps(cluster)
    assert cm["metadata"]["ownerReferences"][0]["uid"] == owner_uid


def test_publishing_the_same_text_for_new_inputs_moves_the_inputs_label(cluster, owner_uid):
    """A new model revision can yield the same template: the operator finds it by the label,
    and a revert finds it by the history, which keeps every inputs hash once, oldest first."""
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=os.environ["KUBECONFIG"]))
    first, second = "1" * 64, "2" * 64
    for inputs in (first, second, first, second):
        body = build_template_configmap(
            serve="smol", namespace="default", owner_uid=owner_uid, text="A", inputs_hash=inputs
        )
        assert publish_configmap(api, body) == body["metadata"]["name"]
    (cm,) = configmaps(cluster)
    assert cm["metadata"]["labels"][labels.INPUTS_HASH] == second[:8]
    assert cm["metadata"]["annotations"][labels.INPUTS_HASH] == second
    assert cm["metadata"]["annotations"][labels.INPUTS_HISTORY] == f"{first[:8]} {second[:8]}"
    assert cm["data"] == {"chat_template.jinja": "A"} and cm["immutable"] is True


# --- fetch-adapters ------------------------------------------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(root: Path, repo: str, revision: str) -> None:
    """A hub cache holding ``repo`` at ``revision`` (the layout huggingface_hub writes)."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / revision).write_text(COMMIT)
    snapshot = folder / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "adapter_config.json").write_text('{"r": 8}')


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_never_printed")


def test_fetch_adapters_runs_the_init_container_args(tmp_path, monkeypatch, offline_hub, capsys):
    adapters = tmp_path / "adapters"
    _hub_cache(adapters / ".hub", "org/sql-lora", "v1")
    adapter = {"name": "sql", "source": "hf://org/sql-lora@v1"}
    spec = load_spec(serve({"lora": {"adapters": [adapter], "mode": "static"}}))
    dep = build_deployment(spec, CONFIG, template_configmap="cm", template_hash="12345678")
    (init,) = dep["spec"]["template"]["spec"]["initContainers"]
    args = [str(adapters) if a == "/adapters" else a for a in init["args"]]
    assert main(args) == 0
    assert (adapters / "sql" / "adapter_config.json").read_text() == '{"r": 8}'
    # vLLM reads /adapters/<name>: the link is relative, so it holds wherever the volume is.
    assert not os.readlink(adapters / "sql").startswith("/")
    assert main(args) == 0  # a restarted init container
    assert "hf_secret_never_printed" not in capsys.readouterr().err


def test_fetch_adapters_failure_names_the_adapter(tmp_path, offline_hub, capsys):
    code = main(["job", "fetch-adapters", "--dest", str(tmp_path), "x=hf://org/missing@v1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "adapter x: cannot download org/missing@v1" in err
    assert "hf_secret_never_printed" not in err


@pytest.mark.parametrize("item", ["x", "x=pvc://c/p", "x=hf://org/repo", "../x=hf://o/r@v"])
def test_fetch_adapters_rejects_bad_arguments(tmp_path, item, capsys):
    assert main(["job", "fetch-adapters", "--dest", str(tmp_path), item]) == 2
