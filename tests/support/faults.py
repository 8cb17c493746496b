"""A fault-injecting reverse proxy for the Kubernetes API: the trouble a real cluster makes.

``FaultProxy`` sits between a client (the operator, kopf) and an API server (the emulator) and
forwards every request, except that, by rules with a rate per fault and a filter per verb,
resource and user agent, it

- answers **500** ``InternalError`` or **503** ``ServiceUnavailable`` without forwarding;
- answers **429** ``TooManyRequests`` with ``Retry-After`` without forwarding;
- answers **409** ``Conflict`` to a write without forwarding (what the API server says when a
  write raced another one: "the object has been modified");
- lets a request **time out**: it is forwarded (a write takes effect), but the answer never
  comes: the connection is held for ``hang`` seconds, then dropped; a watch so hit stays
  silent (no headers, no events) for as long, which is how a stalled watch looks;
- **cuts a watch stream mid-event**: after a few events it sends half of the next one and
  drops the connection (what a load balancer's idle timeout or a restarted API server does);
- answers a watch that resumes from a ``resourceVersion`` with **410 Gone** (an ``ERROR``
  event with code 410 on a 200 stream, as the API server does when that version is too old).

Each decision is a function of the seed and of the request's identity (method, path, whether
it watches, and how many times that identity was seen before), not of the order in which
concurrent clients happen to send requests: a run with the same seed and the same requests
gets the same faults, so a failing run replays. ``injected`` lists what was done, with each
decision's identity; ``exchanges`` every request with the status its client got.

``on_request`` callbacks see each request before anything is done with it (one that answers
True has it dropped: it never reaches the server), ``after_upstream`` callbacks each forwarded
request's upstream answer before the client does (a test kills the client there: before its
write, or after the write took effect with its answer lost).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web

from .cluster import write_kubeconfig

ERROR_500 = "error500"
ERROR_503 = "error503"
THROTTLE_429 = "throttle429"
CONFLICT_409 = "conflict409"
TIMEOUT = "timeout"
WATCH_CUT = "watchCut"
WATCH_GONE = "watchGone"
FAULTS = (ERROR_500, ERROR_503, THROTTLE_429, CONFLICT_409, TIMEOUT, WATCH_CUT, WATCH_GONE)
# Which Kubernetes verbs each fault can hit.
WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})
READS = frozenset({"get", "list"})
APPLIES_TO = {
    ERROR_500: WRITES | READS | {"watch"},
    ERROR_503: WRITES | READS | {"watch"},
    THROTTLE_429: WRITES | READS | {"watch"},
    CONFLICT_409: WRITES,
    TIMEOUT: WRITES | READS | {"watch"},
    WATCH_CUT: frozenset({"watch"}),
    WATCH_GONE: frozenset({"watch"}),
}
HOP_BY_HOP = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}
)


@dataclass(frozen=True)
class Rule:
    """Inject ``fault`` into this share of the requests it applies to.

    ``verbs``, ``resources`` (plurals; ``pods/status`` for a subresource) and ``user_agents``
    (prefixes) narrow it; None means all. A watch that resumes from a resourceVersion is the
    only one ``watchGone`` applies to.
    """

    fault: str
    rate: float
    verbs: frozenset[str] | None = None
    resources: frozenset[str] | None = None
    user_agents: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {', '.join(FAULTS)}")
        if not 0 <= self.rate <= 1:
            raise ValueError(f"rate must be within [0, 1], got {self.rate}")


def every_fault(rate: float, **narrow: Any) -> list[Rule]:
    """One rule per fault, each at ``rate`` of the requests it applies to."""
    return [Rule(fault, rate, **narrow) for fault in FAULTS]


@dataclass(frozen=True)
class Call:
    """A request as the proxy classifies it."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    user_agent: str
    verb: str | None  # None: not a resource request (discovery, /version)
    resource: str | None  # plural, or plural/subresource
    namespace: str | None
    name: str | None

    @property
    def identity(self) -> str:
        return f"{self.method} {self.path}{' watch' if self.verb == 'watch' else ''}"

    @property
    def resumes(self) -> bool:
        return self.verb == "watch" and bool(dict(self.query).get("resourceVersion"))


def classify(method: str, path: str, query: Iterable[tuple[str, str]], user_agent: str) -> Call:
    """The Kubernetes verb and resource of a request (as RBAC names them)."""
    params = tuple(query)
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        rest = parts[3:]
    else:
        return Call(method, path, params, user_agent, None, None, None, None)
    watching = dict(params).get("watch") in ("true", "1")
    if rest[:1] == ["watch"]:
        rest, watching = rest[1:], True
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else "namespaces"
    name = rest[1] if len(rest) > 1 else (namespace if rest[:1] == ["namespaces"] else None)
    if rest == ["namespaces", name] and name == namespace:
        plural, namespace = "namespaces", None
    resource = f"{plural}/{rest[2]}" if len(rest) > 2 else plural
    verb = {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }.get(method)
    if method == "GET":
        verb = "watch" if watching else ("get" if name else "list")
    return Call(method, path, params, user_agent, verb, resource, namespace, name)


@dataclass(frozen=True)
class Injected:
    """One fault the proxy made."""

    at: float
    fault: str
    identity: str  # what the decision was drawn for (replayable with the seed)
    occurrence: int
    user_agent: str


@dataclass(frozen=True)
class Exchange:
    """One request and the status its client was answered (None: no answer, a timeout), with
    the body of a write."""

    at: float
    call: Call
    status: int | None
    fault: str | None
    body: bytes = b""


def _status(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


@dataclass
class FaultProxy:
    """The proxy as an aiohttp handler (``FaultProxyThread`` serves it)."""

    upstream: str
    rules: Sequence[Rule] = ()
    seed: int = 0
    hang: float = 5.0  # how long a timed-out request is held before the connection drops
    retry_after: int = 1  # the Retry-After of a 429
    enabled: bool = True
    injected: list[Injected] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    on_request: list[Callable[[Call], bool]] = field(default_factory=list)  # True: drop it
    after_upstream: list[Callable[[Call, int], None]] = field(default_factory=list)
    _seen: collections.Counter[str] = field(default_factory=collections.Counter)
    _session: aiohttp.ClientSession | None = None

    # --- decisions ------------------------------------------------------------------------------

    def _applicable(self, call: Call) -> list[Rule]:
        if call.verb is None:
            return []
        found = []
        for rule in self.rules:
            if call.verb not in APPLIES_TO[rule.fault]:
                continue
            if rule.fault == WATCH_GONE and not call.resumes:
                continue
            if rule.verbs is not None and call.verb not in rule.verbs:
                continue
            if rule.resources is not None and call.resource not in rule.resources:
                continue
            if rule.user_agents is not None and not call.user_agent.startswith(rule.user_agents):
                continue
            found.append(rule)
        return found

    def decide(self, call: Call) -> tuple[str | None, random.Random]:
        """The fault for this request (or None) and the request's own random stream.

        One uniform draw per request; each applicable rule owns a band of ``rate`` width, in
        rule order, so each fault hits its rate of the requests it applies to (their sum is
        the chance of any fault: keep it at most 1).
        """
        occurrence = self._seen[call.identity]
        self._seen[call.identity] += 1
        rng = random.Random(f"{self.seed}|{call.identity}|{occurrence}")
        draw = rng.random()
        chosen = None
        if self.enabled:
            edge = 0.0
            for rule in self._applicable(call):
                edge += rule.rate
                if draw < edge:
                    chosen = rule.fault
                    break
        if chosen is not None:
            self.injected.append(
                Injected(time.monotonic(), chosen, call.identity, occurrence, call.user_agent)
            )
        return chosen, rng

    def counts(self) -> collections.Counter[str]:
        return collections.Counter(i.fault for i in self.injected)

    # --- serving --------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No total timeout: watches stream for as long as the upstream serves them.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                auto_decompress=False,
            )
        return self._session

    async def __call__(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        call = classify(
            request.method,
            request.path,
            request.query.items(),
            request.headers.get("User-Agent", ""),
        )
        body = await request.read()
        if any([callback(call) for callback in self.on_request]):  # one asked to drop it
            self.exchanges.append(Exchange(time.monotonic(), call, None, None, body))
            return self._drop(request, aiohttp.web.Response(status=504))
        fault, rng = self.decide(call)
        answered: list[int] = []  # the status the client got, once it got one
        try:
            return await self._serve(request, body, call, fault, rng, answered)
        finally:  # also when the client hung up and aiohttp cancelled the handler
            status = answered[0] if answered else None
            written = body if call.method != "GET" else b""
            self.exchanges.append(Exchange(time.monotonic(), call, status, fault, written))

    async def _serve(
        self,
        request: aiohttp.web.BaseRequest,
        body: bytes,
        call: Call,
        fault: str | None,
        rng: random.Random,
        answered: list[int],
    ) -> aiohttp.web.StreamResponse:
        if fault in (ERROR_500, ERROR_503, THROTTLE_429, CONFLICT_409):
            refusal = self._refusal(call, fault)
            answered.append(refusal.status)
            return refusal
        if fault == TIMEOUT:
            if call.verb != "watch":
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with self._forward(request, body) as upstream:
                        await upstream.read()
                        self._after(call, upstream.status)
            await self._hold(request)
            return self._drop(request, aiohttp.web.Response(status=504))
        if fault == WATCH_GONE:
            gone = _status(410, "Expired", "too old resource version: injected fault")
            response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            answered.append(200)
            await response.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            await response.write_eof()
            return response
        if call.verb == "watch":
            cut_after = rng.randint(0, 4) if fault == WATCH_CUT else None
            return await self._stream(request, body, call, cut_after, answered)
        return await self._relay(request, body, call, answered)

    def _refusal(self, call: Call, fault: str) -> aiohttp.web.Response:
        kind = (call.resource or "").partition("/")[0]
        if fault == ERROR_500:
            body = _status(500, "InternalError", "Internal error occurred: injected fault")
            return aiohttp.web.json_response(body, status=500)
        if fault == ERROR_503:
            body = _status(503, "ServiceUnavailable", "the server is currently unable to handle")
            return aiohttp.web.json_response(body, status=503)
        if fault == THROTTLE_429:
            body = _status(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
                retryAfterSeconds=self.retry_after,
            )
            headers = {"Retry-After": str(self.retry_after)}
            return aiohttp.web.json_response(body, status=429, headers=headers)
        message = (
            f'Operation cannot be fulfilled on {kind} "{call.name or ""}": the object has been '
            "modified; please apply your changes to the latest version and try again"
        )
        body = _status(409, "Conflict", message, name=call.name or "", kind=kind)
        return aiohttp.web.json_response(body, status=409)

    def _forward(self, request: aiohttp.web.BaseRequest, body: bytes) -> Any:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        return self._client().request(
            request.method,
            self.upstream + request.rel_url.path_qs,
            headers=headers,
            data=body or None,
        )

    def _after(self, call: Call, status: int) -> None:
        for callback in self.after_upstream:
            callback(call, status)

    async def _relay(
        self, request: aiohttp.web.BaseRequest, body: bytes, call: Call, answered: list[int]
    ) -> aiohttp.web.StreamResponse:
        async with self._forward(request, body) as upstream:
            data = await upstream.read()
            self._after(call, upstream.status)
            headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        answered.append(upstream.status)
        return aiohttp.web.Response(status=upstream.status, body=data, headers=headers)

    async def _stream(
        self,
        request: aiohttp.web.BaseRequest,
        body: bytes,
        call: Call,
        cut_after: int | None,
        answered: list[int],
    ) -> aiohttp.web.StreamResponse:
        """Relay a watch line by line; with ``cut_after``, drop it halfway through that line."""
        async with self._forward(request, body) as upstream:
            self._after(call, upstream.status)
            response = aiohttp.web.StreamResponse(
                status=upstream.status,
                headers={"Content-Type": upstream.headers.get("Content-Type", "application/json")},
            )
            await response.prepare(request)
            answered.append(upstream.status)
            sent, buffer = 0, b""
            try:
                async for chunk in upstream.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if cut_after is not None and sent >= cut_after:
                            await response.write(line[: max(1, len(line) // 2)])
                            return self._drop(request, response)
                        await response.write(line + b"\n")
                        sent += 1
                if buffer:
                    await response.write(buffer)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                return self._drop(request, response)
            return response

    async def _hold(self, request: aiohttp.web.BaseRequest) -> None:
        """Wait ``hang`` seconds (aiohttp cancels the wait if the client gives up first)."""
        await asyncio.sleep(self.hang)

    @staticmethod
    def _drop(
        request: aiohttp.web.BaseRequest, response: aiohttp.web.StreamResponse
    ) -> aiohttp.web.StreamResponse:
        """Close the connection without a (complete) answer; aiohttp sends nothing more."""
        if request.transport is not None:
            request.transport.abort()
        return response


class FaultProxyThread:
    """A ``FaultProxy`` served on 127.0.0.1 from a daemon thread; a context manager that also
    writes a kubeconfig pointing at it."""

    def __init__(
        self,
        upstream: str,
        kubeconfig: Path,
        rules: Sequence[Rule] = (),
        *,
        seed: int = 0,
        hang: float = 5.0,
        retry_after: int = 1,
    ) -> None:
        self.proxy = FaultProxy(upstream, rules, seed=seed, hang=hang, retry_after=retry_after)
        self.kubeconfig = kubeconfig
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by __enter__
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = aiohttp.web.Server(self.proxy, handler_cancellation=True)
        runner = aiohttp.web.ServerRunner(server, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.proxy.close()
            await runner.cleanup()

    def __enter__(self) -> FaultProxyThread:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"the fault proxy did not start: {self._error!r}")
        write_kubeconfig(self.kubeconfig, self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def last_write_at(self, user_agents: tuple[str, ...]) -> float:
        """When (``time.monotonic``) the last non-GET request from a client whose user agent
        starts with one of ``user_agents`` came through; 0 if none did."""
        exchanges = self.call(lambda p: list(p.exchanges))
        writes = [
            e.at
            for e in exchanges
            if e.call.method != "GET" and e.call.user_agent.startswith(user_agents)
        ]
        return max(writes, default=0.0)

    def call(self, fn: Callable[[FaultProxy], Any]) -> Any:
        """Run ``fn(proxy)`` on the proxy's loop (its lists are not shared across threads), or
        here once the proxy has stopped."""
        assert self._loop is not None
        if not self._thread.is_alive():
            return fn(self.proxy)

        async def run() -> Any:
            return fn(self.proxy)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)
