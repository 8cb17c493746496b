"""``smolserve agent …``: the sidecar in every vLLM pod, and its battery run once by hand."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path

from smolserve.agent import DEFAULT_PORT
from smolserve.agent import DEFAULT_VLLM_URL as DEFAULT_URL


def register(subparsers: argparse._SubParsersAction) -> None:
    agent = subparsers.add_parser(
        "agent", help="the serving agent: a sidecar that gates its vLLM pod's readiness"
    )
    commands = agent.add_subparsers(dest="agent_command", required=True, parser_class=type(agent))

    run = commands.add_parser(
        "run",
        help="run the sidecar: serve /ready, run the smoke battery, report to the operator",
        description="Poll this pod's vLLM, run the smoke battery when it becomes healthy, "
        "answer /ready, and write this pod's report into <serve>-agent-status.",
    )
    run.add_argument("--serve", required=True, help="the SmolServe's name")
    run.add_argument("--namespace", help="default: $SMOLSERVE_NAMESPACE, then the account's")
    run.add_argument("--pod", help="this pod's name (default: $SMOLSERVE_POD_NAME)")
    run.add_argument("--vllm-url", default=DEFAULT_URL, help=f"vLLM (default: {DEFAULT_URL})")
    run.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"/ready and /healthz (default: {DEFAULT_PORT})",
    )
    run.add_argument(
        "--smoke",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gate readiness on the smoke battery (default: on)",
    )
    run.add_argument(
        "--adapter-token-file",
        type=Path,
        metavar="PATH",
        help="load LoRA adapters at run time (dynamic mode): write the adapter guard's token "
        "here (a volume shared with vLLM only)",
    )
    run.add_argument(
        "--adapters-dir",
        default="/adapters",
        metavar="DIR",
        help="where the pod mounts adapters (hub downloads in DIR/hub, claims in DIR/pvc/CLAIM; "
        "default: /adapters)",
    )
    run.set_defaults(func=_run)

    smoke = commands.add_parser(
        "smoke",
        help="run the smoke battery once against a vLLM server and print the verdict",
        description="Run the live smoke battery once (exit 1 when a check fails).",
    )
    smoke.add_argument("--vllm-url", default=DEFAULT_URL, help=f"vLLM (default: {DEFAULT_URL})")
    smoke.add_argument(
        "--adapter", action="append", default=[], metavar="NAME", help="check this adapter too"
    )
    smoke.add_argument("--timeout", type=float, default=180.0, help="seconds (default: 180)")
    smoke.add_argument("--json", action="store_true", help="print the result as JSON")
    smoke.set_defaults(func=_smoke)


def _run(args: argparse.Namespace) -> int:
    from smolserve.agent.kube import AgentKube
    from smolserve.agent.loop import Agent, Gate, PodIdentity, SmokeGate
    from smolserve.agent.server import ReadinessServer
    from smolserve.agent.vllm import VllmClient
    from smolserve.jobs.kube import current_namespace

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    namespace = current_namespace(args.namespace)
    identity = PodIdentity.from_env(args.serve, namespace, args.pod)
    vllm = VllmClient(args.vllm_url)
    gates: list[Gate] = []
    if args.adapter_token_file is not None:
        from smolserve.agent.adapters import AdapterGate

        gates.append(AdapterGate(vllm, args.adapter_token_file, adapters_dir=args.adapters_dir))
    if args.smoke:
        gates.append(SmokeGate())
    agent = Agent(identity, vllm, AgentKube(namespace), gates)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = ReadinessServer(agent.verdict, agent.alive, port=args.port).start()
    try:
        agent.run(stop)
    finally:
        server.stop()
    return 0


def _smoke(args: argparse.Namespace) -> int:
    from smolserve.agent.smoke import run_battery
    from smolserve.agent.vllm import VllmClient

    result = run_battery(VllmClient(args.vllm_url), adapters=args.adapter, timeout=args.timeout)
    if args.json:
        failures = [{"check": f.check, "observed": f.observed} for f in result.failures]
        doc = {"passed": result.passed, "seconds": round(result.seconds, 3), "failures": failures}
        print(json.dumps({**doc, "checks": list(result.checks)}, indent=2))
    else:
        print(result.summary())
        for failure in result.failures[1:]:
            print(f"  {failure.check}: {failure.observed}")
    return 0 if result.passed else 1
