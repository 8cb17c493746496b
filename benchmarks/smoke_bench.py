"""The live smoke battery's wall time on a real vLLM server (CPU, tiny random SmolLM3).

The server is the one the operator deploys for the default spec (fixed template, hermes +
smollm3 parsers, special tags, one LoRA adapter), with the operator's own args and only the
CPU flags (no test-only flag that changes what users get). Timed from a healthy server:
the first battery (what a new pod's agent runs: every grammar compiled fresh) and then
``--runs`` more, as the agent would after a vLLM restart.

Target: under 5 s once the server is healthy.

Usage: .venv/bin/python benchmarks/smoke_bench.py [--runs 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "vllm"))

from vpool import ADAPTER_NAME, Assets, ServerKey, prepare_server, serve_object
from vstack import build_tiny_adapter, build_tiny_model, free_port

from smolserve.agent.smoke import run_battery
from smolserve.agent.vllm import VllmClient

KEY = ServerKey("fixed", "smollm3", tags_special=True, lora=True, production=True)
TARGET_SECONDS = 5.0


def assets(root: Path) -> Assets:
    from smolserve.testkit import build_tokenizer

    models = root / "models"
    plain = build_tiny_model(build_tokenizer(root / "tok-plain"), models / "tiny")
    special = models / "tiny-special"
    shutil.copytree(plain, special)
    for item in build_tokenizer(root / "tok-special", tags_special=True).iterdir():
        shutil.copy2(item, special / item.name)
    build_tiny_adapter(plain, root / "adapters" / ADAPTER_NAME)
    return Assets(root=root, models=models, adapters=root / "adapters")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="batteries after the first")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smoke-bench-") as tmp:
        server = prepare_server(
            assets(Path(tmp)),
            serve_object(KEY),
            free_port(),
            KEY.name,
            force_in_reasoning=False,
        )
        began = time.monotonic()
        with server:
            startup = time.monotonic() - began
            client = VllmClient(server.base_url)
            results = [run_battery(client, adapters=[ADAPTER_NAME]) for _ in range(1 + args.runs)]
    failed = [r.summary() for r in results if not r.passed]
    if failed:
        print(f"the battery failed on the default stack: {failed[0]}", file=sys.stderr)
        return 1
    first, rest = results[0].seconds, [r.seconds for r in results[1:]]
    numbers = {
        "server_start_s": round(startup, 1),
        "checks": len(results[0].checks),
        "first_battery_s": round(first, 2),
        "later_batteries_median_s": round(statistics.median(rest), 2) if rest else None,
        "later_batteries_max_s": round(max(rest), 2) if rest else None,
        "target_s": TARGET_SECONDS,
    }
    print(f"server healthy after {numbers['server_start_s']} s")
    print(f"first battery ({numbers['checks']} checks): {numbers['first_battery_s']} s")
    if rest:
        print(
            f"next {len(rest)}: median {numbers['later_batteries_median_s']} s, "
            f"max {numbers['later_batteries_max_s']} s (target < {TARGET_SECONDS:g} s)"
        )
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
