"""What unrelated ConfigMaps cost the operator: RSS and start-up time beside N of them.

The operator lists and watches ConfigMaps only by label (its children, and users' template
sources labelled ``app.kubernetes.io/part-of=smolserve``). This benchmark puts ``--configmaps``
unrelated ConfigMaps (``--size`` bytes of data each) into the test emulator, creates one
SmolServe, starts the operator in its own process, and reports:

- ``startup_s``: process start → the SmolServe's template Job exists (kopf lists every watched
  resource before any handler runs, so this includes listing what the selectors let through);
  ``started: false`` when that did not happen within ``--timeout`` (then it is the timeout);
- ``startup_cpu_s``: the operator's CPU time until then;
- ``rss_mib``: the operator's RSS once it is idle.

``--operator-pythonpath DIR`` runs the operator from another checkout's ``operator/`` folder
(e.g. a worktree of an older commit), to compare before and after in one run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from operator_bench import JOB_IMAGE, Cluster, Operator, emulator
from smolserve import labels


def _create_configmaps(cluster: Cluster, namespace: str, count: int, size: int) -> None:
    cluster.ensure_namespace(namespace)
    payload = "x" * size

    def create(i: int) -> None:
        body = {"metadata": {"name": f"unrelated-{i:05d}"}, "data": {"value": payload}}
        cluster.core.create_namespaced_config_map(namespace, body)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))


def measure(count: int, size: int, pythonpath: str | None, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, emulator(Path(tmp)) as url:
        cluster = Cluster(url)
        cluster.ensure_crd()
        began = time.monotonic()
        _create_configmaps(cluster, "unrelated", count, size)
        filled = time.monotonic() - began
        cluster.ensure_namespace("bench")
        cluster.create_serve("bench", "smol")
        env = {"SMOLSERVE_TEMPLATE_JOB_IMAGE": JOB_IMAGE}
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        command = [sys.executable, "-m", "smolserve.cli", "operator", "--standalone"]
        command += ["--no-scanning"]
        start = time.monotonic()
        op = Operator(command, env)
        try:
            deadline = start + timeout
            started = True
            while not cluster.batch.list_namespaced_job(
                "bench", label_selector=f"{labels.SERVE}=smol"
            ).items:
                if time.monotonic() > deadline:
                    started = False  # reported as such: the number is the timeout
                    break
                time.sleep(0.05)
            startup, cpu = time.monotonic() - start, op.cpu_seconds()
            if started:
                time.sleep(3)  # idle
            rss, peak = op.memory_mib()
            return {
                "configmaps": count,
                "configmap_bytes": size,
                "fill_s": round(filled, 1),
                "started": started,
                "startup_s": round(startup, 2),
                "startup_cpu_s": round(cpu, 2),
                "rss_mib": round(rss, 1),
                "rss_mib_peak": round(peak, 1),
            }
        finally:
            op.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configmaps", type=int, default=10_000, help="unrelated ConfigMaps")
    parser.add_argument("--size", type=int, default=1024, help="bytes of data in each")
    parser.add_argument(
        "--operator-pythonpath",
        help="run the operator from this operator/ folder (another checkout) instead",
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="give up waiting for the Job after this"
    )
    parser.add_argument("--out", type=Path, help="also write the result here as JSON")
    args = parser.parse_args()
    os.environ.pop("KUBECONFIG", None)  # always the emulator: it fills it with ConfigMaps
    result = measure(args.configmaps, args.size, args.operator_pythonpath, args.timeout)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
