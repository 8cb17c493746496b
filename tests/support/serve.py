"""Serve the emulator in the foreground: ``python -m support.serve --kubeconfig PATH`` (in tests/).

For the operator benchmark, which runs the emulator, the operator and the load in separate
processes so that each one's CPU and memory are its own. The controllers run beside it, with
pods ready ``--ready-delay`` seconds after they start (``--readiness auto``, the default here)
or only when a test marks them (``manual``). Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import kmock

from .cluster import write_kubeconfig
from .controllers import ControllerManager
from .emulator import Emulator


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    emulator = Emulator(
        gc_delay=args.gc_delay, refuse_unversioned_watches=args.refuse_unversioned_watches
    )
    controllers = ControllerManager(
        emulator, readiness=args.readiness, ready_delay=args.ready_delay
    )
    async with emulator, controllers, kmock.Server(emulator, port=args.port or None) as server:
        write_kubeconfig(args.kubeconfig, str(server.url).rstrip("/"))
        print(f"serving {server.url} (kubeconfig {args.kubeconfig})", flush=True)
        await stop.wait()
    for error in emulator.errors:
        print(f"emulator: background error: {error}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="write a kubeconfig here")
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    parser.add_argument(
        "--readiness",
        choices=["auto", "manual"],
        default="auto",
        help="auto: pods become ready by themselves (default); manual: only when marked",
    )
    parser.add_argument(
        "--ready-delay", type=float, default=0.2, help="seconds from start to ready (auto)"
    )
    parser.add_argument(
        "--gc-delay",
        type=float,
        default=0.0,
        help="seconds from an owner's deletion to its dependents' collection",
    )
    parser.add_argument(
        "--refuse-unversioned-watches",
        action="store_true",
        help="answer a watch without resourceVersion with an ERROR event, as some servers do",
    )
    args = parser.parse_args()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
