"""The agent's dynamic LoRA: the desired adapter set, fetched, checked, loaded into its vLLM.

``AdapterSync.sync`` makes one pass, never blocking on a download (``hf://`` sources are
fetched in background threads into the hub volume; ``pvc://`` ones are read where the claim is
mounted) and never raising for one adapter's failure:

- adapters vLLM serves that the set does not name are unloaded;
- each adapter of the set is checked before vLLM sees it (``adapter_config.json``: a LoRA, rank
  at most ``maxRank``), loaded with vLLM's run-time API (``load_inplace`` when the name is
  already loaded from another source: requests keep an answer while it swaps), and asked one
  request; then it is ``Ready``;
- a failure is ``Failed`` with the check's, the fetch's or vLLM's own message, and retried with
  exponential backoff, except a check that only a new source can fix; a reload that fails
  unloads the old source, so every pod serves what the spec says or nothing under that name.

vLLM's ``/v1/models`` is the truth about what is loaded: a restarted vLLM (all adapters gone)
is reloaded on the next pass. ``blocking`` names the adapters a pod waits for before it may
take traffic: the set when vLLM last became healthy, so a later addition loads on a serving
pod instead of taking it out of the Service.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smolserve.agent.report import (
    FAILED,
    LOADING,
    READY,
    AdapterReport,
    AgentConfig,
    DesiredAdapter,
    LoraConfig,
    PodReport,
    format_time,
)
from smolserve.agent.vllm import VllmClient, VllmError
from smolserve.errors import SmolserveError
from smolserve.manifests.common import ADAPTERS_DIR
from smolserve.manifests.lora import claim_path, hub_dir
from smolserve.spec import LoraAdapter

if TYPE_CHECKING:
    from smolserve.agent.loop import Agent

logger = logging.getLogger("smolserve.agent")

TOKEN_HEADER = "X-Smolserve-Agent-Token"
BACKOFF_FIRST_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 300.0
FETCH_THREADS = 2
SYNC_SECONDS = 2.0  # a pass this often at most while nothing is due: notices a restarted vLLM

Fetch = Callable[[DesiredAdapter, str], str]


class AdapterError(SmolserveError):
    """One adapter cannot be served; the message is one line for its status."""


def backoff_seconds(attempts: int) -> float:
    """The wait after the ``attempts``-th consecutive failure: 2 s, 4 s, … at most 5 min."""
    return min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** max(attempts - 1, 0))


def read_adapter_config(path: str) -> dict[str, Any]:
    """The adapter's ``adapter_config.json`` (peft's), or an ``AdapterError`` saying why not."""
    config_file = Path(path) / "adapter_config.json"
    try:
        doc = json.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdapterError(f"no adapter_config.json in {path}") from None
    except (OSError, ValueError) as exc:
        raise AdapterError(f"cannot read {config_file}: {exc}") from None
    if not isinstance(doc, dict):
        raise AdapterError(f"{config_file} is not a JSON object")
    return doc


def bounds_problem(config: Mapping[str, Any], *, max_rank: int) -> str | None:
    """Why vLLM must not be asked to load this adapter, or None: a LoRA within ``maxRank``."""
    peft_type = config.get("peft_type", "LORA")
    if str(peft_type).upper() != "LORA":
        return f"not a LoRA adapter (peft_type {peft_type})"
    ranks = [config.get("r")]
    pattern = config.get("rank_pattern")
    if isinstance(pattern, Mapping):
        ranks += list(pattern.values())
    numbers = [r for r in ranks if isinstance(r, int) and not isinstance(r, bool)]
    if not numbers:
        return "adapter_config.json has no rank (r)"
    rank = max(numbers)
    if rank > max_rank:
        return (
            f"rank {rank} is above spec.lora.maxRank {max_rank}: raise maxRank (this restarts "
            "the pods) or use an adapter of a lower rank"
        )
    return None


def base_model_note(config: Mapping[str, Any], base_model: str) -> str:
    """A hint for vLLM's error when the adapter names another base model than the served one."""
    trained_on = config.get("base_model_name_or_path")
    if isinstance(trained_on, str) and trained_on and trained_on != base_model:
        return f" (the adapter was trained on {trained_on}; this SmolServe serves {base_model})"
    return ""


def fetch_from_hub(adapter: DesiredAdapter, hub_dir: str) -> str:
    """Download an ``hf://`` adapter into the hub volume (``HF_TOKEN`` from the Secret)."""
    from smolserve.jobs.adapters import download_snapshot

    try:
        return str(download_snapshot(LoraAdapter(adapter.name, adapter.source), Path(hub_dir)))
    except SmolserveError as exc:
        raise AdapterError(str(exc).removeprefix(f"adapter {adapter.name}: ")) from None


class AdapterApi:
    """vLLM's adapter routes over loopback, with the pod's agent token the guard asks for."""

    def __init__(self, client: VllmClient, token: str) -> None:
        self.client = client
        self.token = token

    def loaded(self) -> dict[str, str]:
        """Adapter name → the path vLLM loaded it from (``/v1/models``: entries with a parent)."""
        return {
            str(m["id"]): str(m.get("root") or "")
            for m in self.client.models()
            if m.get("parent") is not None
        }

    def load(self, name: str, path: str, *, inplace: bool) -> None:
        body = {"lora_name": name, "lora_path": path, "load_inplace": inplace}
        self._manage("/v1/load_lora_adapter", body)

    def unload(self, name: str) -> None:
        self._manage("/v1/unload_lora_adapter", {"lora_name": name})

    def answers(self, name: str) -> None:
        """One request under the adapter's name, one token (it is served, not just listed)."""
        body = {"model": name, "prompt": "ping", "max_tokens": 1, "temperature": 0}
        try:
            self.client.post("/v1/completions", body)
        except VllmError as exc:
            raise AdapterError(f"loaded, but a request to it failed: {vllm_message(exc)}") from None

    def _manage(self, path: str, body: dict[str, Any]) -> None:
        try:
            self.client.post_text(path, body, headers={TOKEN_HEADER: self.token})
        except VllmError as exc:
            raise AdapterError(vllm_message(exc)) from None


def vllm_message(exc: VllmError) -> str:
    """vLLM's own error message out of ``POST …: HTTP 500: {"error": {"message": …}}``."""
    text = str(exc)
    _, sep, body = text.partition(": HTTP ")
    if sep:
        _, _, payload = body.partition(": ")
        try:
            doc = json.loads(payload)
        except ValueError:
            return text
        message = ((doc.get("error") or {}) if isinstance(doc, dict) else {}).get("message")
        if isinstance(message, str) and message:
            return message
    return text


@dataclass
class _Tracked:
    """What the agent knows of one adapter of the set (for its current source)."""

    name: str
    source: str
    state: str = LOADING
    error: str | None = None
    at: str | None = None
    path: str | None = None  # where it was (or is being) loaded from
    attempts: int = 0
    retry_at: float = 0.0
    final: bool = False  # failed a check only a new source can fix: not retried
    fetching: Future[str] | None = field(default=None, repr=False)

    @property
    def settled(self) -> bool:
        return self.state in (READY, FAILED)


class AdapterSync:
    def __init__(
        self,
        api: AdapterApi,
        *,
        adapters_dir: str = ADAPTERS_DIR,
        fetch: Fetch = fetch_from_hub,
        clock: Callable[[], float] = time.monotonic,
        stamp: Callable[[], str] | None = None,
    ) -> None:
        self.api = api
        self.adapters_dir = adapters_dir
        self.fetch = fetch
        self.clock = clock
        self.stamp = stamp or _utc_now
        self._tracked: dict[str, _Tracked] = {}
        self._gate: set[str] | None = None  # None: the next set seen
        self._pool = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="agent-fetch")

    # --- what the loop asks -------------------------------------------------------------------

    def reports(self) -> dict[str, AdapterReport]:
        return {
            name: AdapterReport(t.source, t.state, t.error, t.at)
            for name, t in sorted(self._tracked.items())
        }

    def blocking(self) -> list[str]:
        """The adapters this pod waits for before it may take traffic (see the module doc)."""
        if self._gate is None:
            return ["(the desired set is not known yet)"]
        waiting = sorted(
            n for n in self._gate if n in self._tracked and not self._tracked[n].settled
        )
        if not waiting:
            self._gate = set()
        return waiting

    def vllm_restarted(self) -> None:
        """vLLM was down: it lost every adapter; the pod waits for the current set again."""
        self._gate = None
        for tracked in self._tracked.values():
            if tracked.state == READY:
                tracked.state, tracked.at = LOADING, self.stamp()

    def next_due(self) -> float | None:
        """When a retry is due (clock time), or None; a running fetch counts as due now."""
        times = [
            t.retry_at if t.state == FAILED else self.clock()
            for t in self._tracked.values()
            if not t.final and (t.state == FAILED or t.fetching is not None)
        ]
        return min(times) if times else None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- one pass -----------------------------------------------------------------------------

    def sync(self, config: LoraConfig) -> bool:
        """One pass over the set; True when a report changed. Needs vLLM healthy: without
        ``/v1/models`` nothing is attempted (the adapters stay as they were)."""
        desired = config.adapters
        try:
            loaded = self.api.loaded()
        except VllmError:
            return False
        before = self.reports()
        wanted = {a.name: a for a in desired}
        if self._gate is None:
            self._gate = set(wanted)
        for name in sorted(set(loaded) - set(wanted)):
            with contextlib.suppress(AdapterError):  # still listed: tried again next pass
                self.api.unload(name)
                logger.info("adapter %s: unloaded (no longer in the spec)", name)
        for name in set(self._tracked) - set(wanted):
            del self._tracked[name]
        for adapter in desired:
            tracked = self._tracked.get(adapter.name)
            if tracked is None or tracked.source != adapter.source:
                tracked = _Tracked(adapter.name, adapter.source, at=self.stamp())
                self._tracked[adapter.name] = tracked
                logger.info("adapter %s: loading %s", adapter.name, adapter.source)
            self._step(adapter, tracked, loaded, config)
        return self.reports() != before

    def _step(
        self,
        adapter: DesiredAdapter,
        tracked: _Tracked,
        loaded: Mapping[str, str],
        config: LoraConfig,
    ) -> None:
        if tracked.state == READY and tracked.path and loaded.get(adapter.name) == tracked.path:
            return
        if tracked.final or (tracked.state == FAILED and self.clock() < tracked.retry_at):
            return
        spec_adapter = LoraAdapter(adapter.name, adapter.source)
        if spec_adapter.kind == "pvc":
            path: str | None = claim_path(spec_adapter, self.adapters_dir)
        else:  # hf://: downloaded in the background, then loaded on a later pass
            path = self._fetched(adapter, tracked, hub_dir(self.adapters_dir), loaded)
        if path is None:
            return
        peft: dict[str, Any] = {}
        serving = dict(loaded)  # what vLLM serves under this name once this step is done
        try:
            peft = read_adapter_config(path)
            problem = bounds_problem(peft, max_rank=config.max_rank)
            if problem is not None:
                self._fail(tracked, problem, serving, adapter.name, final=True)
                return
            if loaded.get(adapter.name) != path:
                self.api.load(adapter.name, path, inplace=adapter.name in loaded)
                serving[adapter.name] = path
            self.api.answers(adapter.name)
        except AdapterError as exc:
            note = base_model_note(peft, config.base_model)
            self._fail(tracked, f"{exc}{note}", serving, adapter.name)
            return
        self._set(tracked, READY, None)
        tracked.path, tracked.attempts = path, 0

    def _fetched(
        self, adapter: DesiredAdapter, tracked: _Tracked, hub_dir: str, loaded: Mapping[str, str]
    ) -> str | None:
        """The downloaded path once the background fetch is done; None while it runs."""
        if tracked.fetching is None:
            if tracked.path is not None and tracked.state != FAILED:
                return tracked.path
            tracked.fetching = self._pool.submit(self.fetch, adapter, hub_dir)
            return None
        if not tracked.fetching.done():
            return None
        future, tracked.fetching = tracked.fetching, None
        try:
            tracked.path = future.result()
        except Exception as exc:  # a fetch error of any kind is this adapter's, in one line
            message = str(exc) if isinstance(exc, AdapterError) else f"{type(exc).__name__}: {exc}"
            first = message.splitlines()[0] if message else "the download failed"
            self._fail(tracked, first, loaded, adapter.name)
            return None
        return tracked.path

    def _fail(
        self,
        tracked: _Tracked,
        message: str,
        loaded: Mapping[str, str],
        name: str,
        *,
        final: bool = False,
    ) -> None:
        tracked.attempts += 1
        tracked.retry_at = self.clock() + backoff_seconds(tracked.attempts)
        tracked.final = final
        tracked.path = None
        self._set(tracked, FAILED, message)
        if name and name in loaded:  # an older source of it: serve the spec's or nothing
            with contextlib.suppress(AdapterError):  # still listed: tried again next pass
                self.api.unload(name)

    def _set(self, tracked: _Tracked, state: str, error: str | None) -> None:
        if (tracked.state, tracked.error) != (state, error):
            tracked.state, tracked.error, tracked.at = state, error, self.stamp()
            logger.info("adapter %s: %s%s", tracked.name, state, f": {error}" if error else "")


def _utc_now() -> str:
    return format_time(datetime.datetime.now(datetime.UTC))


def write_token(path: Path) -> str:
    """A fresh random token for the adapter guard, written atomically (vLLM reads it through
    the pod's fsGroup; nothing outside the pod mounts the volume)."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text(token, encoding="utf-8")
    scratch.chmod(0o640)
    os.replace(scratch, path)
    return token


@dataclass(frozen=True)
class _Snapshot:
    reports: dict[str, AdapterReport]
    blocking: tuple[str, ...]


class AdapterGate:
    """Dynamic LoRA as one of the agent's gates (``loop.Gate``), with its own thread.

    The thread runs ``AdapterSync`` passes while vLLM is healthy: at once when the desired set
    changes or vLLM becomes healthy, when a retry is due, and every ``SYNC_SECONDS``. The
    readiness and the report read a snapshot taken after each pass, so a probe never waits for
    a load. Without a ``lora`` section in the agent config (static mode) it is always ready.
    """

    name = "adapters"

    def __init__(
        self,
        vllm: VllmClient,
        token_file: Path,
        *,
        adapters_dir: str = ADAPTERS_DIR,
        fetch: Fetch = fetch_from_hub,
        sync_seconds: float = SYNC_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        api = AdapterApi(vllm, write_token(token_file))
        self.sync = AdapterSync(api, adapters_dir=adapters_dir, fetch=fetch, clock=clock)
        self.sync_seconds = sync_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._config: LoraConfig | None = None
        self._healthy = False
        self._restarted = False  # vLLM became healthy (again): the thread resets the sync
        self._agent: Agent | None = None
        self._thread: threading.Thread | None = None
        self._snapshot = _Snapshot({}, ("(the desired set is not known yet)",))

    # --- loop.Gate ------------------------------------------------------------------------------

    def configure(self, config: AgentConfig) -> None:
        with self._lock:
            self._config = config.lora
        self._wake.set()

    def on_healthy(self, agent: Agent) -> None:
        with self._lock:
            self._agent, self._healthy, self._restarted = agent, True, True
            self._snapshot = _Snapshot(self._snapshot.reports, ("(vLLM just became healthy)",))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="agent-adapters", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def on_unhealthy(self) -> None:
        """vLLM is gone, and its adapters with it: not ready again before a pass reloaded them
        (the agent marks vLLM healthy a moment before ``on_healthy`` runs)."""
        with self._lock:
            self._healthy, self._restarted = False, True
            self._snapshot = _Snapshot(self._snapshot.reports, ("(vLLM is not healthy)",))

    def verdict(self) -> tuple[bool, str]:
        with self._lock:
            config, snapshot = self._config, self._snapshot
        if config is None or not config.adapters:
            return True, "no adapters to load"
        if snapshot.blocking:
            return False, f"loading adapters: {', '.join(snapshot.blocking)}"
        states = [r.state for r in snapshot.reports.values()]
        failed = states.count(FAILED)
        summary = f"{states.count(READY)} adapters loaded"
        return True, summary + (f", {failed} failed" if failed else "")

    def contribute(self, report: PodReport) -> PodReport:
        with self._lock:
            if self._config is None:
                return report
            return report.but(adapters=dict(self._snapshot.reports))

    # --- the thread -----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        self.sync.close()

    def _run(self) -> None:
        """Only this thread touches ``self.sync``; the others see its snapshots."""
        while not self._stop.is_set():
            self._wake.clear()
            with self._lock:
                config, healthy, agent = self._config, self._healthy, self._agent
                restarted, self._restarted = self._restarted, False
            if restarted:
                self.sync.vllm_restarted()
            if healthy and config is not None:
                try:
                    changed = self.sync.sync(config)
                except Exception:  # a bug must not end the thread: log, try again
                    logger.exception("adapter pass failed")
                    changed = False
                snapshot = _Snapshot(self.sync.reports(), tuple(self.sync.blocking()))
                with self._lock:
                    stale = self._restarted  # vLLM went away during the pass: not this one
                    changed = not stale and (changed or snapshot != self._snapshot)
                    if not stale:
                        self._snapshot = snapshot
                if changed and agent is not None:
                    agent.publish()
            due = self.sync.next_due()
            wait = (
                self.sync_seconds
                if due is None
                else max(0.05, min(self.sync_seconds, due - self.clock()))
            )
            self._wake.wait(wait)
