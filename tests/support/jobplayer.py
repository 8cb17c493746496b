"""Play every template Job as it runs, cheaply enough for tests with many SmolServes.

``JobPlayer`` watches the emulated node for running template-Job pods. For each, it does what
the pod's ``smolserve job publish-template`` would: the template text comes from the real
engine (``verified_text``: tokenizer, generate, verify), computed once per distinct template
inputs (the text depends on nothing else: not on the SmolServe's name, uid or namespace), and
is published with the real ``publish_configmap``; then the container exits 0 and the Job
controller completes the Job. A Job the engine refuses exits 1 with the command's one line.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from smolserve.cli import build_parser
from smolserve.errors import SmolserveError
from smolserve.jobs.publish import PublishRequest, publish_configmap, verified_text
from smolserve.manifests import build_template_configmap

from .kubelet import Kubelet

# One engine run at a time in this process: its first run imports transformers' tokenizer
# classes, and transformers' lazy imports are not thread-safe (two players in two threads, as
# in the convergence test, got "cannot import name 'PreTrainedTokenizerFast'"). A template
# Job's pod is a process of its own.
_ENGINE = threading.Lock()


class JobPlayer:
    """A background thread that plays template Jobs (``api``: a CoreV1Api to publish with)."""

    def __init__(self, kubelet: Kubelet, api: Any, *, poll: float = 0.05) -> None:
        self.kubelet = kubelet
        self.api = api
        self.poll = poll
        self.played: list[tuple[str, str]] = []  # (namespace, pod)
        self.errors: list[str] = []
        self._texts: dict[tuple[Any, ...], str | SmolserveError] = {}
        self._done: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-player", daemon=True)

    def __enter__(self) -> JobPlayer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        if self.errors and exc[0] is None:
            raise AssertionError("the job player failed:\n" + "\n".join(self.errors))

    def _running_pods(self) -> list[dict[str, Any]]:
        def pick(emulator: Any) -> list[dict[str, Any]]:
            return [
                pod
                for pod in emulator.objects("pods")
                if "job-name" in (pod["metadata"].get("labels") or {})
                and (pod.get("status") or {}).get("phase") == "Running"
                and pod["metadata"]["uid"] not in self._done
            ]

        return self.kubelet.cluster.call(pick)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for pod in self._running_pods():
                    self._play(pod)
            except Exception as exc:  # reported by __exit__
                self.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(self.poll)

    def _text(self, args: Any) -> str:
        key = (args.tokenizer, args.revision, args.variant, args.close_system_turn,
               args.template_file, args.template_env, args.allow_unverified)  # fmt: skip
        if key not in self._texts:
            if args.template_file or args.template_env:
                raise NotImplementedError("the job player plays generated templates only")
            request = PublishRequest(
                serve="", namespace="", owner_uid=None, inputs_hash="",
                tokenizer=self.kubelet._local(args.tokenizer), revision=args.revision,
                variant=args.variant, close_system_turn=args.close_system_turn,
                allow_unverified=args.allow_unverified,
            )  # fmt: skip
            try:
                with _ENGINE:
                    self._texts[key] = verified_text(request)
            except SmolserveError as exc:
                self._texts[key] = exc
        text = self._texts[key]
        if isinstance(text, SmolserveError):
            raise text
        return text

    def _play(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        container = pod["spec"]["containers"][0]
        args = build_parser().parse_args(container["args"])
        code, message = 0, ""
        try:
            body = build_template_configmap(
                serve=args.serve,
                namespace=args.namespace or meta["namespace"],
                owner_uid=args.owner_uid,
                text=self._text(args),
                inputs_hash=args.inputs_hash,
            )
            publish_configmap(self.api, body)
        except SmolserveError as exc:
            code, message = 1, str(exc)
        self._done.add(meta["uid"])
        self.kubelet.exit_container(meta["namespace"], meta["name"], code, message)
        self.played.append((meta["namespace"], meta["name"]))
