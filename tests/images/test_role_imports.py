"""Each role imports only what its extra installs: the operator never the template engine
(transformers, tokenizers, huggingface_hub, jinja2) nor torch, the Job commands never kopf, and
the user's CLI only what its commands need.

Every command runs for real in a process of its own under ``python -X importtime``, which
reports each module the moment it is imported, lazy imports inside handlers included: the
operator reconciles one SmolServe against the emulator (template Job, then Deployment), the
Job's own arguments publish its template.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from .roles import forbidden_imports, imported_modules
from .scenario import (
    NAMESPACE,
    ROOT,
    emulator_process,
    free_port,
    job_env,
    python_env,
    run_one_serve,
    wait_for,
    wait_healthy,
)

MODELS_DIR = "/models"  # where the Job mounts the models PVC


def smolserve(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "smolserve.cli", *map(str, args)],
        cwd=ROOT,
        env=python_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_only_its_role(imported: set[str], extra: str | None, command: str) -> None:
    wrong = sorted(imported & forbidden_imports(extra))
    role = f"smolserve[{extra}]" if extra else "smolserve"
    assert not wrong, f"{command} imported {wrong}, which {role} does not install"


def test_roles_forbid_what_the_brief_says() -> None:
    """The role table itself: a vacuous forbidden set would let every check below pass."""
    assert {"transformers", "tokenizers", "huggingface_hub", "jinja2", "torch"} <= (
        forbidden_imports("operator")
    )
    assert {"kopf", "torch"} <= forbidden_imports("job")
    assert {"kopf", "kubernetes", "transformers"} <= forbidden_imports(None)


def test_operator_and_template_job(tmp_path: Path, models_root: Path) -> None:
    job_imports: set[str] = set()

    def run_job(job: dict[str, Any]) -> None:
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["smolserve"]
        args = [a.replace(MODELS_DIR, str(models_root), 1) for a in container["args"]]
        env = job_env(container, NAMESPACE)
        home = tmp_path / "job-home"  # the Job's HOME and HF_HOME are on its emptyDir
        env.update({k: str(home / k.lower()) for k in ("HOME", "HF_HOME") if k in env})
        env["SMOLSERVE_TERMINATION_LOG"] = str(tmp_path / "termination-log")
        result = smolserve(*args, KUBECONFIG=str(emulator.kubeconfig), **env)
        assert result.returncode == 0, result.stderr[-3000:]
        job_imports.update(imported_modules(result.stderr))

    with emulator_process(tmp_path) as emulator:
        port = free_port()
        log = tmp_path / "operator.log"
        command = [sys.executable, "-X", "importtime", "-m", "smolserve.cli", "operator"]
        command += ["--standalone", "--no-scanning", "--liveness-port", str(port)]
        env = python_env(
            KUBECONFIG=str(emulator.kubeconfig),
            SMOLSERVE_TEMPLATE_JOB_IMAGE="localhost/smolserve/template-job:test",
        )
        with log.open("w") as out:
            operator = subprocess.Popen(command, cwd=ROOT, env=env, stderr=out, stdout=out)
        try:
            wait_healthy(port, lambda: operator.poll() is None, 60, log.read_text)
            run_one_serve(emulator, run_job)
        finally:
            operator.terminate()
            operator.wait(30)
    operator_imports = imported_modules(log.read_text())
    assert "kopf" in operator_imports and "transformers" in job_imports  # importtime worked
    assert_only_its_role(operator_imports, "operator", "smolserve operator")
    assert_only_its_role(job_imports, "job", "smolserve job publish-template")


def test_fetch_adapters(tmp_path: Path) -> None:
    """The LoRA init container's command, offline: it gets as far as the hub download."""
    result = smolserve(
        "job",
        "fetch-adapters",
        "--dest",
        tmp_path / "adapters",
        "a=hf://org/adapter@0123456789abcdef0123456789abcdef01234567",
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),
    )
    assert result.returncode == 1
    assert "smolserve: error: adapter a: cannot download org/adapter" in result.stderr
    imported = imported_modules(result.stderr)
    assert "huggingface_hub" in imported
    assert_only_its_role(imported, "job", "smolserve job fetch-adapters")


def test_the_agent(tmp_path: Path) -> None:
    """`smolserve agent run` (the vLLM pods' sidecar, from the template-job image) through its
    first report: the Kubernetes client, never kopf nor the template engine."""
    from smolserve.agent.report import agent_status_name, read_reports
    from smolserve.manifests.agent import build_agent_configmaps
    from smolserve.spec import load_spec

    spec = load_spec({"metadata": {"name": "smol", "namespace": NAMESPACE}, "spec": {}})
    with emulator_process(tmp_path) as emulator:
        core = kubernetes.client.CoreV1Api(emulator.client)
        for configmap in build_agent_configmaps(spec):
            core.create_namespaced_config_map(NAMESPACE, configmap)
        log = tmp_path / "agent.log"
        command = [sys.executable, "-X", "importtime", "-m", "smolserve.cli", "agent", "run"]
        command += ["--serve", "smol", "--namespace", NAMESPACE, "--pod", "smol-1"]
        command += ["--vllm-url", f"http://127.0.0.1:{free_port()}", "--port", str(free_port())]
        env = python_env(KUBECONFIG=str(emulator.kubeconfig))
        with log.open("w") as out:
            agent = subprocess.Popen(command, cwd=ROOT, env=env, stderr=out, stdout=out)
        try:

            def reported() -> bool:
                assert agent.poll() is None, log.read_text()[-3000:]
                data = core.read_namespaced_config_map(agent_status_name("smol"), NAMESPACE).data
                return "smol-1" in read_reports(data)[0]

            wait_for(reported, 60, "the agent's first report")
        finally:
            agent.terminate()
            agent.wait(30)
    imported = imported_modules(log.read_text())
    assert "kubernetes" in imported  # importtime worked
    assert not imported & {"kopf", "transformers", "tokenizers", "jinja2", "torch"}
    assert_only_its_role(imported, "job", "smolserve agent run")


@pytest.mark.parametrize(
    ("extra", "args"),
    [
        (None, ["render", "-f", ROOT / "examples" / "smolserve.yaml"]),
        ("template", ["template", "generate", "--verify", "--tokenizer", "TOKENIZER"]),
    ],
    ids=["render", "template"],
)
def test_user_cli(extra: str | None, args: list, models_root: Path, tmp_path: Path) -> None:
    args = [str(models_root / "SmolLM3-3B") if a == "TOKENIZER" else a for a in args]
    if extra == "template":
        args += ["--out", tmp_path / "chat_template.jinja"]
    result = smolserve(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_only_its_role(imported_modules(result.stderr), extra, f"smolserve {args[0]}")
