"""Benchmark: generate + verify on the test-kit tokenizer, the way the template Job runs it.

Measures, on a tokenizer built once beforehand:
- cold: wall time of a fresh ``smolserve template generate --verify`` process (imports, tokenizer
  load, generate, the verify battery, atomic write), median of ``--runs``;
- warm: the same work in-process after the imports, split into load / generate / verify.
Exits 1 if the cold median is over the budget (3 s).

    .venv/bin/python benchmarks/template_bench.py [--runs 5] [--budget 3.0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cold_run(tokenizer_dir: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "smolserve.cli",
            "template",
            "generate",
            "--tokenizer",
            str(tokenizer_dir),
            "--out",
            str(out),
            "--verify",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def warm_run(tokenizer_dir: Path) -> dict[str, float]:
    from smolserve.template import generate_template, load_tokenizer
    from smolserve.template.verify import verify_template

    t0 = time.perf_counter()
    tokenizer = load_tokenizer(str(tokenizer_dir))
    t1 = time.perf_counter()
    generated = generate_template(tokenizer, "fixed")
    t2 = time.perf_counter()
    report = verify_template(generated.text, tokenizer)
    t3 = time.perf_counter()
    assert report.ok
    return {
        "load_s": t1 - t0,
        "generate_s": t2 - t1,
        "verify_s": t3 - t2,
        "checks": len(report.results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--budget", type=float, default=3.0)
    args = parser.parse_args()

    from smolserve.testkit import build_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        tokenizer_dir = build_tokenizer(Path(tmp) / "tok")
        build_s = time.perf_counter() - start
        cold = [cold_run(tokenizer_dir, Path(tmp) / "t.jinja") for _ in range(args.runs)]
        warm = [warm_run(tokenizer_dir) for _ in range(args.runs)]
    result = {
        "testkit_build_s": round(build_s, 3),
        "cold_generate_verify_s": {
            "median": round(statistics.median(cold), 3),
            "min": round(min(cold), 3),
            "max": round(max(cold), 3),
        },
        "warm_median_s": {
            key: round(statistics.median(w[key] for w in warm), 3)
            for key in ("load_s", "generate_s", "verify_s")
        },
        "verify_checks": warm[0]["checks"],
        "budget_s": args.budget,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["cold_generate_verify_s"]["median"] < args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
