"""``smolserve operator``: run the SmolServe operator."""

from __future__ import annotations

import argparse
import logging

# kopf's default, repeated here so that `--help` needs no kopf import (operator/settings.py
# holds the one used, and a test checks they agree).
PEERING_LIFETIME = 60


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 5 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected whole seconds from 5 to 3600, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "operator",
        help="run the SmolServe operator (kopf)",
        description="Reconcile SmolServe objects: template Job → ConfigMap → vLLM Deployment.",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="serve only this namespace (repeatable; default: the whole cluster)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--peering", metavar="NAME", help="coordinate replicas through this kopf peering"
    )
    mode.add_argument(
        "--standalone", action="store_true", help="no peering (the default without --peering)"
    )
    parser.add_argument(
        "--peering-lifetime",
        type=_seconds,
        default=PEERING_LIFETIME,
        metavar="SECONDS",
        help="with --peering: how long a silent replica counts as alive; a standby takes over "
        f"within about this long after the active one dies (default: {PEERING_LIFETIME})",
    )
    parser.add_argument(
        "--liveness-port",
        type=int,
        metavar="PORT",
        help="serve a liveness probe on http://0.0.0.0:PORT/healthz",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve the operator's Prometheus metrics on http://0.0.0.0:PORT/metrics",
    )
    parser.add_argument(
        "--no-scanning",
        action="store_true",
        help="do not watch namespaces and CRDs for changes (for API servers that lack them)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from smolserve.operator.runner import run

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf logs a line per handler call on every watch event of every object ("Handler
        # 'deployment-changed' succeeded."): at scale that is most of the log and ~10 % of the
        # operator's CPU. Warnings and errors still show; --verbose shows everything.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    liveness = f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None
    run(
        namespaces=args.namespace,
        peering=args.peering,
        standalone=args.standalone,
        liveness=liveness,
        scanning=not args.no_scanning,
        peering_lifetime=args.peering_lifetime,
        metrics_port=args.metrics_port,
        own_process=True,
    )
    return 0
