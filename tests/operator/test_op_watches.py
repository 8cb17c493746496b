"""The operator's watches: no kind stops being watched, and a stalled watch is resumed within
its bound (``settings.Timeouts``), through the fault proxy (``support/faults.py``)."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import kopf._cogs.clients.watching as watching
import kopf._cogs.structs.references as references
import kubernetes
import pytest

from smolserve import labels
from smolserve.kinds import SMOLSERVE
from smolserve.manifests import OperatorConfig
from smolserve.operator.runner import handle_loop_exception
from smolserve.operator.settings import Timeouts, build_settings
from support import EmulatedCluster
from support.faults import TIMEOUT, FaultProxyThread, Rule
from support.running import OperatorThread, wait_for
from support.world import MERGE, NS, World, template_annotation

# A watch every 2 s, cut by the client after 3 s without an answer.
SHORT = Timeouts(request=5, connect=2, watch_server=2, watch_client=3)
SMOLSERVE_RESOURCE = references.Resource(SMOLSERVE.group, SMOLSERVE.version, SMOLSERVE.plural)
HANG = 60.0  # how long the proxy holds a stalled watch: far beyond the bound under test


def _operator_loop() -> asyncio.AbstractEventLoop:
    """kopf's event loop (``OperatorThread`` runs it in a thread named "operator")."""
    (thread,) = [t for t in threading.enumerate() if t.name == "operator"]
    return next(
        o
        for o in gc.get_objects()
        if isinstance(o, asyncio.AbstractEventLoop)
        and getattr(o, "_thread_id", None) == thread.ident
    )


class WatchEnded(logging.Handler):
    """Records kopf's word that a watcher ended ("Stopping the watch-stream for ...")."""

    def __init__(self, plural: str) -> None:
        super().__init__(logging.DEBUG)
        self.plural = plural
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(f"Stopping the watch-stream for {self.plural}."):
            self.records.append(message)

    def __enter__(self) -> WatchEnded:
        logger = logging.getLogger("kopf._cogs.clients.watching")
        self._level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("kopf._cogs.clients.watching")
        logger.removeHandler(self)
        logger.setLevel(self._level)


def test_a_new_objects_event_on_a_quiet_watch_never_ends_the_watch(
    cluster: EmulatedCluster, operator_config: OperatorConfig
) -> None:
    """kopf 1.45's watch inactivity timer also runs while its watcher hands an event on. When
    it expires there, as the watcher starts the worker for an object's first event (one
    ``sleep(0)``), its cancellation hits the watcher, which ends without a word: that kind is
    never watched again (seen in the 50-SmolServe convergence test: the ConfigMaps' watch
    ended, a template's ConfigMap was never seen). The operator keeps that timer off; the
    client's timeout bounds a silent watch instead (next test).

    Provoked here as a loaded loop makes it: a ConfigMap's first event arrives in the same loop
    turn as a timer that then holds the loop for 2.5 s, past the moment a 2 s inactivity timer
    started by the previous event would expire. With such a timer the ConfigMaps' watch ends
    on the first try (kopf 1.45.2); with the operator's settings it never does."""
    settings = build_settings()
    assert settings.watching.inactivity_timeout == math.inf
    assert settings.watching.server_timeout < settings.watching.client_timeout <= 70

    operator = OperatorThread(operator_config).start()
    try:
        loop = _operator_loop()
        core = kubernetes.client.CoreV1Api(
            kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        )
        labelled = {labels.PART_OF: labels.APP_NAME}  # a template source: kopf watches it

        def configmap(name: str) -> None:
            body = {"metadata": {"name": name, "labels": labelled}, "data": {"k": "v"}}
            core.create_namespaced_config_map(NS, body)

        def hold_the_loop() -> None:  # in kopf's loop: the next turn's timers, then busy
            loop.call_later(0.05, time.sleep, 2.5)
            time.sleep(0.3)

        with WatchEnded("configmaps") as ended:
            for attempt in range(3):
                configmap(f"quiet-{attempt}")
                time.sleep(0.8)
                loop.call_soon_threadsafe(hold_the_loop)
                time.sleep(0.05)
                configmap(f"first-event-{attempt}")  # arrives while the loop is busy
                time.sleep(3.5)
                assert not ended.records, f"the ConfigMaps' watch ended (try {attempt})"
    finally:
        operator.stop()


@pytest.fixture()
def proxy(cluster: EmulatedCluster, tmp_path: Path) -> Iterator[FaultProxyThread]:
    """A proxy that, once enabled, stalls kopf's Deployment watches (no answer for 60 s)."""
    rule = Rule(TIMEOUT, 1.0, verbs=frozenset({"watch"}), resources=frozenset({"deployments"}))
    proxy = FaultProxyThread(cluster.url, tmp_path / "proxy-kubeconfig", [rule], hang=HANG)
    proxy.proxy.enabled = False
    with proxy:
        yield proxy


# The operator of ``proxied_world`` (conftest.py) runs with these.
OPERATOR_OPTIONS = {"timeouts": SHORT}


def test_a_stalled_watch_is_resumed_within_the_client_timeout(
    proxied_world: World, proxy: FaultProxyThread
) -> None:
    world = proxied_world
    world.create()
    cm = world.run_template()
    world.ready()

    def stalled() -> bool:
        return any(i.fault == TIMEOUT for i in proxy.call(lambda p: list(p.injected)))

    proxy.call(lambda p: setattr(p, "enabled", True))
    wait_for(stalled, timeout=10, what="a stalled Deployment watch")
    proxy.call(lambda p: setattr(p, "enabled", False))  # the next watch is answered
    began = time.monotonic()
    # A change behind the operator's back while its Deployment watch hears nothing.
    body = {"spec": {"template": {"metadata": {"annotations": {labels.TEMPLATE_HASH: "0" * 8}}}}}
    world.apps.patch_namespaced_deployment("smol", NS, body, _content_type=MERGE)
    wanted = cm["metadata"]["labels"][labels.TEMPLATE_HASH]
    wait_for(
        lambda: template_annotation(world.deployment()) == wanted,
        timeout=SHORT.watch_client + 10,
        what="the operator's template back",
    )
    assert time.monotonic() - began < HANG / 2  # the client cut the stall, not the proxy


def test_a_watch_stream_the_shutdown_left_open_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Closing the loop closes such a stream, which fails inside kopf: debug, no traceback;
    anything else goes to asyncio's own handler."""
    loop = asyncio.new_event_loop()
    stream = watching.infinite_watch(
        settings=build_settings(), resource=SMOLSERVE_RESOURCE, namespace=None
    )
    failed = RuntimeError("generator didn't stop after athrow()")
    message = f"an error occurred during closing of asynchronous generator {stream!r}"
    try:
        with caplog.at_level(logging.DEBUG):
            handle_loop_exception(
                loop, {"message": message, "exception": failed, "asyncgen": stream}
            )
            assert [(r.levelname, r.exc_info) for r in caplog.records] == [("DEBUG", None)]
            caplog.clear()
            other = {"message": "Task exception was never retrieved", "exception": failed}
            handle_loop_exception(loop, other)
            assert [r.levelname for r in caplog.records] == ["ERROR"]
    finally:
        loop.close()
