"""A dynamic-LoRA SmolServe end to end on one machine, every part real but the node.

The emulator (tests/support) runs the API and its Deployment/ReplicaSet/Pod controllers; the
real operator (kopf, in a thread) reconciles the SmolServe; its template Job runs for real. For
each pod the emulator creates, a real vLLM server starts from the operator's own Deployment (its
vLLM container's args and env, the mounted ConfigMaps written to local directories), and a real
agent process (``smolserve agent run`` with the agent container's args and env) beside it. A
thread copies each agent's ``/ready`` into its pod's readiness, as the kubelet's probe would.

Used by tests/vllm/test_lora_dynamic.py and benchmarks/lora_bench.py. Each pod has its own
``/adapters`` (a hub volume, and the claim ``adapters`` mounted at ``pvc/adapters``) and its own
``/run/smolserve``; with no hub reachable, ``hf://`` adapters come from a hub cache laid out in
each pod's hub volume beforehand (``seed_hub``), which the agent's real download reads offline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
from vstack import (
    ADAPTERS_MOUNT,
    AGENT_RUN_MOUNT,
    GUARD_MOUNT,
    MODELS_MOUNT,
    PARSERS_MOUNT,
    TEMPLATE_MOUNT,
    VllmServer,
    free_port,
    localize,
    server_command,
    server_env,
)

from smolserve import labels
from smolserve.agent.report import agent_status_name, read_reports
from support import EmulatedCluster, install_crds
from support.factories import operator_config, smolserve
from support.kubelet import Kubelet
from support.running import OperatorThread, wait_for

REPO = Path(__file__).resolve().parents[2]
NS = "default"
NAME = "smol"
SERVED = "smollm3"
CLAIM = "adapters"  # the claim pvc:// adapters name; its content is the `claim` directory
MERGE = "application/merge-patch+json"
COMMIT = "0123456789abcdef0123456789abcdef0123456{}"  # + one hex digit per revision


def serve_spec(adapters: list[dict[str, str]], **lora: Any) -> dict[str, Any]:
    """The SmolServe this stack runs: the tiny model from the `models` claim, dynamic LoRA."""
    return {
        "model": {"pvc": {"claimName": "models", "path": "tiny"}},
        "servedModelName": SERVED,
        "parsers": {"reasoning": "smollm3"},
        "lora": {"adapters": adapters, "maxRank": 8, "maxLoras": 3, "mode": "dynamic", **lora},
        "rollout": {"smoke": False},
    }


def seed_hub(hub: Path, repo: str, revision: str, adapter: Path, digit: str) -> Path:
    """A hub cache holding ``repo`` at ``revision`` with ``adapter``'s files (the layout
    huggingface_hub reads offline); returns the snapshot directory."""
    commit = COMMIT.format(digit)
    folder = hub / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / revision).write_text(commit)
    snapshot = folder / "snapshots" / commit
    if not snapshot.exists():
        shutil.copytree(adapter, snapshot)
    return snapshot


def http(method: str, url: str, body: Any = None, headers: dict | None = None, timeout=60):
    """(status, text) of one request; HTTP errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def answers(base_url: str, model: str) -> bool:
    """Whether ``model`` (the base model or an adapter) answers one short request."""
    body = {"model": model, "prompt": "hi", "max_tokens": 2, "temperature": 0}
    return http("POST", f"{base_url}/v1/completions", body)[0] == 200


@dataclass
class Pod:
    """One emulated pod's real processes."""

    name: str
    uid: str
    root: Path  # its local volumes
    vllm: VllmServer
    agent_port: int
    agent: subprocess.Popen[bytes] | None = None
    ready: bool = False

    @property
    def adapters_dir(self) -> Path:
        return self.root / "adapters"

    @property
    def hub(self) -> Path:
        return self.adapters_dir / "hub"

    @property
    def token_file(self) -> Path:
        return self.root / "run" / "agent-token"

    def models(self) -> dict[str, dict[str, Any]]:
        data = json.loads(http("GET", f"{self.vllm.base_url}/v1/models")[1])["data"]
        return {m["id"]: m for m in data}

    def answers(self, model: str, base_url: str | None = None) -> bool:
        return answers(base_url or self.vllm.base_url, model)

    def agent_ready(self) -> bool:
        try:
            return http("GET", f"http://127.0.0.1:{self.agent_port}/ready", timeout=2)[0] == 200
        except (urllib.error.URLError, OSError):
            return False

    def pid(self) -> int | None:
        proc = self.vllm._proc
        return proc.pid if proc is not None else None


@dataclass
class LoraStack:
    """See the module docstring. A context manager; ``start_pods`` after entering."""

    assets_models: Path
    claim: Path
    workdir: Path
    spec: dict[str, Any]
    host: str = "127.0.0.1"  # 0.0.0.0: the vLLM servers also listen on this host's address
    pods: dict[str, Pod] = field(default_factory=dict)
    hub_seeds: list[tuple[str, str, Path, str]] = field(default_factory=list)

    def __enter__(self) -> LoraStack:
        self._saved_kubeconfig = os.environ.get("KUBECONFIG")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster = EmulatedCluster(self.workdir / "kubeconfig").__enter__()
        os.environ["KUBECONFIG"] = str(self.cluster.kubeconfig)
        client = install_crds(self.cluster)
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.kubelet = Kubelet(self.cluster, {"/models": self.assets_models}, self.workdir)
        self.operator = OperatorThread(operator_config()).start()
        self._stop = threading.Event()
        self._follower = threading.Thread(target=self._follow_readiness, daemon=True)
        body = smolserve(self.spec, name=NAME, namespace=NS)
        self.custom.create_namespaced_custom_object(
            labels.GROUP, labels.VERSION, NS, labels.PLURAL, body
        )
        job = wait_for(lambda: self._jobs(), timeout=30, what="the template Job")[0]
        code, message = self.kubelet.run_job(job)
        assert code == 0, message
        wait_for(self.deployment, timeout=30, what="the Deployment")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for pod in self.pods.values():
            self._stop_agent(pod)
            pod.vllm.stop()
        self.operator.stop()
        self.cluster.__exit__(None, None, None)
        if self._saved_kubeconfig is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = self._saved_kubeconfig

    # --- the cluster's side -----------------------------------------------------------------

    def _jobs(self) -> list[dict[str, Any]]:
        return self.cluster.snapshot("jobs", "batch", **{labels.SERVE: NAME})

    def deployment(self) -> dict[str, Any] | None:
        found = self.cluster.snapshot("deployments", "apps", **{labels.SERVE: NAME})
        return found[0] if found else None

    def configmap(self, name: str) -> dict[str, str]:
        return dict(self.core.read_namespaced_config_map(name, NS).data or {})

    def patch_lora(self, adapters: list[dict[str, str]]) -> float:
        """Change the spec's adapters (nothing else); returns when the write returned."""
        self.custom.patch_namespaced_custom_object(
            labels.GROUP,
            labels.VERSION,
            NS,
            labels.PLURAL,
            NAME,
            {"spec": {"lora": {"adapters": adapters}}},
            _content_type=MERGE,
        )
        return time.monotonic()

    def serve(self) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            labels.GROUP, labels.VERSION, NS, labels.PLURAL, NAME
        )

    def adapters_status(self) -> dict[str, dict[str, Any]]:
        return {a["name"]: a for a in (self.serve().get("status") or {}).get("adapters") or []}

    def reports(self) -> dict[str, Any]:
        return read_reports(self.configmap(agent_status_name(NAME)))[0]

    # --- the pods ---------------------------------------------------------------------------

    def start_pods(self, count: int, timeout: float = 300) -> list[Pod]:
        """Start vLLM and the agent for each of the Deployment's ``count`` running pods; returns
        when every agent says its pod is ready."""

        def running() -> list[dict[str, Any]] | None:
            pods = self.kubelet.wait_running(NS, "Deployment", NAME)
            return pods if len(pods) == count else None

        for pod in wait_for(running, timeout=60, what=f"{count} running pods"):
            if pod["metadata"]["name"] not in self.pods:
                self._start_pod(pod)
        if not self._follower.is_alive():
            self._follower.start()
        wait_for(
            lambda: all(p.ready for p in self.pods.values()),
            timeout=timeout,
            what="every agent ready",
        )
        return list(self.pods.values())

    def _mounts(self, root: Path) -> dict[str, Path]:
        deployment = self.deployment()
        assert deployment is not None
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        local = {
            "template": TEMPLATE_MOUNT,
            "parsers": PARSERS_MOUNT,
            "adapter-guard": GUARD_MOUNT,
        }
        mounts: dict[str, Path] = {
            MODELS_MOUNT: self.assets_models,
            ADAPTERS_MOUNT: root / "adapters",
            AGENT_RUN_MOUNT: root / "run",
        }
        for volume in volumes:
            if volume["name"] in local and "configMap" in volume:
                target = root / volume["name"]
                target.mkdir(parents=True, exist_ok=True)
                for key, text in self.configmap(volume["configMap"]["name"]).items():
                    (target / key).write_text(text, encoding="utf-8")
                mounts[local[volume["name"]]] = target
        (root / "run").mkdir(parents=True, exist_ok=True)
        claims = root / "adapters" / "pvc"
        claims.mkdir(parents=True, exist_ok=True)
        if not (claims / CLAIM).exists():
            (claims / CLAIM).symlink_to(self.claim)
        (root / "adapters" / "hub").mkdir(parents=True, exist_ok=True)
        return mounts

    def _start_pod(self, pod: dict[str, Any]) -> None:
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        root = self.workdir / "pods" / name
        mounts = self._mounts(root)
        for repo, revision, adapter, digit in self.hub_seeds:
            seed_hub(root / "adapters" / "hub", repo, revision, adapter, digit)
        deployment = self.deployment()
        assert deployment is not None
        port = free_port()
        server = VllmServer(
            command=server_command(deployment, mounts, port, host=self.host),
            port=port,
            log_path=root / "vllm.log",
            model_name=SERVED,
            env=server_env(deployment, mounts),
        )
        running = Pod(name, uid, root, server, free_port())
        self.pods[name] = running
        running.agent = self._start_agent(running, pod, deployment, mounts)
        server.start()

    def _start_agent(
        self,
        running: Pod,
        pod: dict[str, Any],
        deployment: dict[str, Any],
        mounts: dict[str, Path],
    ) -> subprocess.Popen[bytes]:
        containers = deployment["spec"]["template"]["spec"]["containers"]
        agent = next(c for c in containers if c["name"] == "agent")
        args = localize(agent["args"], mounts)
        args[args.index("--vllm-url") + 1] = running.vllm.base_url
        args[args.index("--port") + 1] = str(running.agent_port)
        args[args.index("--adapters-dir") + 1] = str(mounts[ADAPTERS_MOUNT])
        meta = pod["metadata"]
        from_pod = {
            "metadata.namespace": meta["namespace"],
            "metadata.name": meta["name"],
            "metadata.uid": meta["uid"],
            f"metadata.annotations['{labels.POD_TEMPLATE_HASH}']": (
                meta.get("annotations") or {}
            ).get(labels.POD_TEMPLATE_HASH, ""),
            "metadata.labels['pod-template-hash']": (meta.get("labels") or {}).get(
                "pod-template-hash", ""
            ),
        }
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "operator"),
            "HF_HUB_OFFLINE": "1",
            "KUBECONFIG": str(self.cluster.kubeconfig),
        }
        for var in agent.get("env") or []:
            if "value" in var:
                env[var["name"]] = localize([var["value"]], mounts)[0]
            elif "fieldRef" in (var.get("valueFrom") or {}):
                env[var["name"]] = from_pod[var["valueFrom"]["fieldRef"]["fieldPath"]]
        log = (running.root / "agent.log").open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "smolserve.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _stop_agent(self, pod: Pod) -> None:
        proc, pod.agent = pod.agent, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def _follow_readiness(self) -> None:
        """The kubelet's readiness probe on each agent's /ready, every 0.2 s."""
        while not self._stop.wait(0.2):
            for pod in list(self.pods.values()):
                ready = pod.agent_ready()
                if ready != pod.ready:
                    self.kubelet.set_ready(NS, pod.name, ready)
                    pod.ready = ready

    def agent_log(self, pod: Pod, lines: int = 30) -> str:
        text = (pod.root / "agent.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])
