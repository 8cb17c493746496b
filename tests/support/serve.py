"""Serve the emulator in the foreground: ``python -m support.serve --kubeconfig PATH`` (in tests/).

For the operator benchmark, which runs the emulator, the operator and the load in separate
processes so that each one's CPU and memory are its own. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import kmock

from .cluster import write_kubeconfig
from .emulator import Emulator


async def serve(kubeconfig: Path, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Emulator() as emulator, kmock.Server(emulator, port=port or None) as server:
        write_kubeconfig(kubeconfig, str(server.url).rstrip("/"))
        print(f"serving {server.url} (kubeconfig {kubeconfig})", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="write a kubeconfig here")
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    args = parser.parse_args()
    asyncio.run(serve(args.kubeconfig, args.port))


if __name__ == "__main__":
    main()
