"""Run the emulator on a port from a background thread and hand out a kubeconfig for it.

Tests stay synchronous: the emulator has its own event loop in its own thread, the operator
(kopf) has another, and test code talks to both through the real Kubernetes client. The
controllers (``controllers.py``) run on the emulator's loop unless ``controllers=False``;
``call`` runs a function there, which is how tests reach the node (``cluster.controllers.node``),
the clock and the garbage collector.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.test_utils
import kubernetes
import yaml

from .controllers import ControllerManager
from .emulator import Emulator
from .node import Readiness

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "smolserve.yaml"


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig with one context that points at ``server``, its user a fixed token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "emulator", "user": {"token": "emulator"}}],
        "contexts": [
            {
                "name": "emulator",
                "context": {"cluster": "emulator", "user": "emulator", "namespace": "default"},
            }
        ],
        "current-context": "emulator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


class EmulatedCluster:
    """The emulator served on 127.0.0.1 from a daemon thread; a context manager.

    ``readiness``, ``start_delay``, ``ready_delay`` and ``job_backoff`` go to the controllers
    (see ``node.py`` and ``controllers.py``); ``gc_delay`` and ``refuse_unversioned_watches``
    to the emulator. Leaving the context fails if a controller or the collector raised.
    """

    def __init__(
        self,
        kubeconfig: Path,
        *,
        controllers: bool = True,
        readiness: Readiness = "manual",
        start_delay: float = 0.05,
        ready_delay: float = 0.2,
        job_backoff: float = 0.0,
        gc_delay: float | None = 0.0,
        refuse_unversioned_watches: bool = False,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.url = ""
        self._emulator_options = {
            "gc_delay": gc_delay,
            "refuse_unversioned_watches": refuse_unversioned_watches,
        }
        self._controller_options: dict[str, Any] | None = (
            {
                "readiness": readiness,
                "start_delay": start_delay,
                "ready_delay": ready_delay,
                "job_backoff": job_backoff,
            }
            if controllers
            else None
        )
        self.emulator: Emulator | None = None
        self.controllers: ControllerManager | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="k8s-emulator", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        # aiohttp's test server, not kmock.Server: that one also patches aiohttp's resolver
        # for the whole process, which only unwinds if servers stop in the reverse order they
        # started, and clusters here run side by side (their URLs are addresses anyway).
        async with (
            Emulator(**self._emulator_options) as emulator,
            aiohttp.test_utils.RawTestServer(emulator) as server,
        ):
            self.emulator, self.url = emulator, str(server.make_url("")).rstrip("/")
            if self._controller_options is None:
                self._ready.set()
                await self._stop.wait()
                return
            async with ControllerManager(emulator, **self._controller_options) as controllers:
                self.controllers = controllers
                self._ready.set()
                await self._stop.wait()

    def __enter__(self) -> EmulatedCluster:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Kubernetes API emulator did not start")
        write_kubeconfig(self.kubeconfig, self.url)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None and self.emulator is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        if self.emulator.errors and exc_type is None:
            raise RuntimeError(
                "the emulator's background work failed:\n" + "\n".join(self.emulator.errors)
            )

    def call(self, fn: Callable[[Emulator], T]) -> T:
        """Run ``fn(emulator)`` on the emulator's loop (the store is not thread-safe)."""
        assert self._loop is not None and self.emulator is not None
        emulator = self.emulator

        async def run() -> T:
            return fn(emulator)

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(10)

    def collect_garbage(self) -> None:
        """Run the garbage collector now (with ``gc_delay=None`` it runs only then)."""
        self.call(lambda emulator: emulator.collect_garbage())

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward: deadlines that fall due fire now."""
        self.call(lambda emulator: emulator.clock.advance(seconds))

    def snapshot(self, plural: str, group: str = "", **labels: str) -> list[dict[str, Any]]:
        """Deep copies of the stored objects of a type, optionally filtered by labels."""

        def pick(emulator: Emulator) -> list[dict[str, Any]]:
            objs = emulator.objects(plural, group)
            wanted = [
                o for o in objs if labels.items() <= (o["metadata"].get("labels") or {}).items()
            ]
            return copy.deepcopy(wanted)

        return self.call(pick)


def load_crds(path: Path = CRD_PATH) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions in a YAML stream."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [d for d in docs if d.get("kind") == "CustomResourceDefinition"]


def install_crds(
    cluster: EmulatedCluster, crds: list[dict[str, Any]] | None = None
) -> kubernetes.client.ApiClient:
    """Create ``crds`` (default: the chart's) through the API, as ``kubectl apply`` would;
    returns the API client it used (no fault proxy, no operator user agent)."""
    client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    ext = kubernetes.client.ApiextensionsV1Api(client)
    for crd in load_crds() if crds is None else crds:
        ext.create_custom_resource_definition(crd)
    return client
