"""Build and run the kopf operator (``smolserve operator``, tests and the benchmark use this)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

import kopf

from smolserve.manifests import OperatorConfig
from smolserve.operator.discovery import REFRESH_SECONDS, ServedApis
from smolserve.operator.handlers import Peering, register
from smolserve.operator.kube import Kube, load_configuration
from smolserve.operator.runtime import Reconciler
from smolserve.operator.settings import PEERING_LIFETIME, Timeouts, build_settings
from smolserve.spec import prepare_validator

logger = logging.getLogger("smolserve.operator")


def login_for(kube: Kube) -> Callable[..., kopf.ConnectionInfo]:
    """kopf's login handler: credentials from the same source as ``kube``'s, read again at
    each login (kopf logs in again when the API answers 401), so that kopf's watches and the
    operator's own writes always go to the same API server."""

    def login(**_: Any) -> kopf.ConnectionInfo:
        configuration = load_configuration(kube.kubeconfig)
        header = configuration.get_api_key_with_prefix("BearerToken") or ""
        scheme, _, token = header.rpartition(" ")
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            username=configuration.username or None,
            password=configuration.password or None,
            scheme=scheme or None,
            token=token or None,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
        )

    return login


def handle_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's own handler, except for a kopf watch stream that the shutdown left open.

    kopf 1.45 stops a watcher by cancelling its task; when that lands while the watcher hands
    an event on (outside its stream's generator), the generator stays open until the loop
    closes, and closing it then fails inside kopf (``generator didn't stop after athrow()``).
    Nothing is lost: the operator is exiting and everything else has stopped. Logged as such,
    not as an error with a traceback."""
    stream = context.get("asyncgen")
    code = getattr(stream, "ag_code", None)
    if code is not None and code.co_name == "infinite_watch" and "kopf" in code.co_filename:
        logger.debug("a kopf watch stream left open by the shutdown: %s", context.get("exception"))
        return
    loop.default_exception_handler(context)


def build_registry(
    reconciler: Reconciler, *, namespaces: Sequence[str] = (), peering: Peering | None = None
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(login_for(reconciler.kube))
    register(registry, reconciler, namespaces=namespaces, peering=peering)
    return registry


def peering_identity() -> str:
    """This replica's name in the peering object: the pod's (``POD_ID``, as the chart sets
    it, and as kopf would take it), else the host's and the process's."""
    return os.environ.get("POD_ID") or f"{socket.gethostname()}@{os.getpid()}"


def run(
    *,
    namespaces: Sequence[str] = (),
    peering: str | None = None,
    standalone: bool = False,
    liveness: str | None = None,
    scanning: bool = True,
    peering_lifetime: int = PEERING_LIFETIME,
    timeouts: Timeouts | None = None,
    config: OperatorConfig | None = None,
    reconciler: Reconciler | None = None,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
    metrics_port: int | None = None,
    metrics_address: str = "0.0.0.0",
    own_process: bool = False,
) -> None:
    """Run the operator until stopped; blocking (it owns the calling thread's event loop).

    ``reconciler``: one built by the caller (tests read its progress); else one from the
    environment (``KUBECONFIG`` or in-cluster), ``config`` and ``timeouts``. ``metrics_port``:
    serve the operator's Prometheus metrics at ``http://ADDRESS:PORT/metrics`` while it runs.
    ``own_process``: the operator is the process (``smolserve operator``), not a guest in a
    test's: its start-up objects are exempted from the garbage collector for good.
    """
    timeouts = timeouts or Timeouts()
    if reconciler is None:
        kube = Kube.from_environment(timeout=(timeouts.connect, timeouts.request))
        # With CRD scanning kopf starts watching a newly installed CRD; look again now and then.
        apis = ServedApis(kube, refresh_seconds=REFRESH_SECONDS if scanning else None)
        reconciler = Reconciler(kube, config or OperatorConfig.from_env(), apis=apis)
    prepare_validator()  # at start, not in the first reconcile
    if own_process:
        # Everything made so far (the imported modules, the schema, the clients) lives as long
        # as the process: keep the cyclic garbage collector from walking it again at each of
        # its full collections (measured: ~6 % of the operator's CPU in bulk was the collector).
        gc.freeze()
    # kopf pauses every peer when two share a priority: each process draws its own.
    place = None
    if peering is not None and not standalone:
        place = Peering(peering, peering_identity(), random.randint(1, 2**31 - 1))
    server = None
    if metrics_port is not None:
        from prometheus_client import start_http_server

        server, _ = start_http_server(
            metrics_port, addr=metrics_address, registry=reconciler.metrics.registry
        )
    try:
        with asyncio.Runner() as runner:
            runner.get_loop().set_exception_handler(handle_loop_exception)
            runner.run(
                kopf.operator(
                    registry=build_registry(reconciler, namespaces=namespaces, peering=place),
                    settings=build_settings(
                        scanning=scanning, timeouts=timeouts, peering_lifetime=peering_lifetime
                    ),
                    standalone=place is None,
                    peering_name=peering if place is not None else None,
                    priority=place.priority if place is not None else None,
                    identity=place.identity if place is not None else None,
                    liveness_endpoint=liveness,
                    clusterwide=not namespaces,
                    namespaces=list(namespaces),
                    stop_flag=stop_flag,
                    ready_flag=ready_flag,
                )
            )
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
