"""What the reliability tests share: a fleet of SmolServes driven through a scenario, the end
state two runs are compared by, and the checks that hold at every moment of a run.

The scenario: create → template Job → Deployment → template change (a new Job, a rollout) →
revert (the kept template, no Job). ``end_state`` is what "the same end state" means: every
child (kind, name, body, labels, annotations, ownerReferences, with the SmolServes' uids
replaced by their names, as two runs give them different uids) and every SmolServe's status
(conditions by type with status, reason, message; no timestamps; kopf's bookkeeping as kopf
leaves it, except an empty ``progress`` it leaves behind a handler that was retried).
"""

from __future__ import annotations

import collections
import copy
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import kubernetes

from smolserve import labels
from smolserve.kinds import CHILDREN
from smolserve.manifests.server import mounted_template
from support import EmulatedCluster
from support.factories import PVC_MODEL, smolserve

GROUP, VERSION, PLURAL = labels.GROUP, labels.VERSION, labels.PLURAL
MERGE = "application/merge-patch+json"
CHILD_PLURALS = [(r.plural, r.group) for r in CHILDREN]
# Status fields that are times, not state.
TIMESTAMPS = ("lastTransitionTime", "lastUpdateTime", "lastProbeTime")
# The template change and its revert (the first template is the default closeSystemTurn: true).
CHANGE = {"template": {"closeSystemTurn": False}}
REVERT = {"template": {"closeSystemTurn": True}}


def _without_timestamps(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timestamps(v) for k, v in value.items() if k not in TIMESTAMPS}
    if isinstance(value, list):
        return [_without_timestamps(v) for v in value]
    return value


def end_state(cluster: EmulatedCluster, namespace: str) -> dict[str, Any]:
    """The children and statuses of every SmolServe in ``namespace``, comparable across runs."""
    serves = [s for s in cluster.snapshot(PLURAL, GROUP) if s["metadata"]["namespace"] == namespace]
    uids = {s["metadata"]["uid"]: s["metadata"]["name"] for s in serves}
    children: dict[str, Any] = {}
    for plural, group in CHILD_PLURALS:
        for obj in cluster.snapshot(plural, group):
            meta = obj["metadata"]
            if meta.get("namespace") != namespace or labels.SERVE not in (meta.get("labels") or {}):
                continue
            children[f"{obj['kind']} {meta['name']}"] = {
                "body": {k: v for k, v in obj.items() if k not in ("metadata", "status")},
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
                "ownerReferences": meta.get("ownerReferences") or [],
            }
    statuses = {}
    for serve in serves:
        status = copy.deepcopy(serve.get("status") or {})
        bookkeeping = status.get("kopf") or {}
        if bookkeeping.get("progress") == {}:  # kopf leaves it empty after a retried handler
            del bookkeeping["progress"]
        conditions = status.pop("conditions", [])
        status["conditions"] = {
            c["type"]: {k: c.get(k) for k in ("status", "reason", "message")} for c in conditions
        }
        statuses[serve["metadata"]["name"]] = {
            "status": _without_timestamps(status),
            "generation": serve["metadata"].get("generation"),
            "finalizers": serve["metadata"].get("finalizers") or [],
        }
    text = json.dumps({"children": children, "statuses": statuses}, sort_keys=True)
    for uid, name in uids.items():
        text = text.replace(uid, f"<uid of {name}>")
    leftover = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text)
    assert not leftover, f"uids of objects that are not SmolServes here: {sorted(set(leftover))}"
    return json.loads(text)


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """What differs between two end states, one line per object (for a readable failure)."""
    lines = []
    for section in ("children", "statuses"):
        want, got = expected[section], actual[section]
        lines += [f"missing {section[:-1]}: {key}" for key in sorted(want.keys() - got.keys())]
        lines += [f"extra {section[:-1]}: {key}" for key in sorted(got.keys() - want.keys())]
        for key in sorted(want.keys() & got.keys()):
            if want[key] != got[key]:
                lines.append(f"{key} differs: expected {want[key]}, got {got[key]}")
    return lines


class Creations:
    """How many times each of the operator's children (and the Deployments' ReplicaSets, whose
    names are their pod templates' hashes) was created in the emulator (a listener)."""

    PLURALS = frozenset({plural for plural, _ in CHILD_PLURALS} | {"replicasets"})

    def __init__(self, cluster: EmulatedCluster, namespace: str) -> None:
        self.namespace = namespace
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

        def listen(emulator: Any) -> None:
            emulator.listeners.append(self._on_change)

        cluster.call(listen)

    def _on_change(self, group: str, plural: str, change: str, obj: dict[str, Any]) -> None:
        if (
            change == "ADDED"
            and plural in self.PLURALS
            and obj["metadata"].get("namespace") == self.namespace
        ):
            self.counts[plural, obj["metadata"]["name"]] += 1

    def more_than_once(self) -> dict[tuple[str, str], int]:
        """For a scenario whose template is published once (so is the Job's RBAC)."""
        return {key: n for key, n in self.counts.items() if n > 1}

    def beyond(self, reference: Creations) -> dict[tuple[str, str], int]:
        """The objects created more often than in ``reference`` (the same scenario without
        faults): a duplicate. (Some are created more than once in any run: the template
        Job's RBAC exists only while a template is being published.)"""
        return {key: n for key, n in self.counts.items() if n > reference.counts[key]}

    def of(self, plural: str) -> collections.Counter[str]:
        return collections.Counter({n: c for (p, n), c in self.counts.items() if p == plural})


class Fleet:
    """SmolServes ``names`` in ``namespace``, driven through the API the tests' client uses."""

    def __init__(
        self, cluster: EmulatedCluster, api_client: Any, namespace: str, names: Iterable[str]
    ) -> None:
        self.cluster = cluster
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.names = list(names)

    def create(self, spec: dict[str, Any] | None = None) -> None:
        for name in self.names:
            # Without the smoke gate: it waits for each pod's agent, which nobody plays here
            # (tests/operator/test_op_rollout.py does); the faults under test are the API's.
            base = {"model": PVC_MODEL, "rollout": {"smoke": False}}
            body = smolserve({**base, **(spec or {})}, name=name, namespace=None)
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body
            )

    def patch(self, spec: dict[str, Any]) -> None:
        for name in self.names:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}, _content_type=MERGE
            )

    def delete(self) -> None:
        for name in self.names:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )

    def views(self) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Each SmolServe with its Deployment, from one look at the store."""
        namespace, names = self.namespace, set(self.names)

        def look(emulator: Any) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
            found = []
            for serve in emulator.objects(PLURAL, GROUP):
                meta = serve["metadata"]
                if meta["namespace"] == namespace and meta["name"] in names:
                    deployment = emulator.get("deployments", namespace, meta["name"], "apps")
                    found.append(copy.deepcopy((serve, deployment)))
            return found

        return self.cluster.call(look)

    def settled(self, template_hash: Callable[[str | None], bool]) -> str | None:
        """None when every SmolServe is Ready and up to date on a template ``template_hash``
        accepts; else what the first one that is not says."""
        views = self.views()
        if len(views) != len(self.names):
            return f"{len(views)} of {len(self.names)} SmolServes exist"
        for serve, deployment in views:
            name, status = serve["metadata"]["name"], serve.get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            wanted = {"TemplateReady": "True", "Available": "True", "Progressing": "False"}
            problems = [
                status.get("phase") != "Ready" and f"phase {status.get('phase')}",
                status.get("observedGeneration") != serve["metadata"]["generation"]
                and "status not observed",
                any(conditions.get(t) != v for t, v in wanted.items()) and f"{conditions}",
                conditions.get("Degraded") != "False" and "degraded",
                not template_hash(status.get("templateHash")) and "template",
                deployment is None and "no Deployment",
                deployment is not None
                and mounted_template(deployment) != status.get("templateConfigMap")
                and "Deployment on another template",
            ]
            found = [p for p in problems if p]
            if found:
                progressing = next(
                    (c for c in status.get("conditions") or [] if c["type"] == "Progressing"), {}
                )
                rollout = (deployment or {}).get("status") or {}
                return (
                    f"{name}: {', '.join(found)} (Progressing: {progressing.get('reason')}: "
                    f"{progressing.get('message')}; Deployment generation "
                    f"{(deployment or {}).get('metadata', {}).get('generation')}, status "
                    f"{_without_timestamps(rollout)})"
                )
        return None

    def hashes(self) -> set[str | None]:
        return {(s.get("status") or {}).get("templateHash") for s, _ in self.views()}

    def wait(self, template_hash: Callable[[str | None], bool], timeout: float, what: str) -> float:
        """Wait until ``settled``; returns the seconds it took."""
        began = time.monotonic()
        while (problem := self.settled(template_hash)) is not None:
            if time.monotonic() - began > timeout:
                raise AssertionError(f"{what}: not converged after {timeout:.0f} s: {problem}")
            time.sleep(0.25)
        return time.monotonic() - began


class LogRecords(logging.Handler):
    """Every log record of the operator's process (kopf's and smolserve's), for checking that
    nothing was left unhandled."""

    # kopf's words for an exception nobody handled (handled retries are logged too, but say
    # "will retry" or "failed temporarily").
    UNHANDLED = re.compile(
        r"failed with an exception|unrecoverable|Unhandled|escalating|crashed", re.IGNORECASE
    )

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> LogRecords:
        root = logging.getLogger()
        self._level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._level)

    def write(self, path: Path) -> None:
        """The whole log as text (a failing run's evidence)."""
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        path.write_text("\n".join(formatter.format(r) for r in self.records) + "\n")

    def unhandled(self) -> list[str]:
        return [
            f"{r.name}: {r.getMessage()}"
            for r in self.records
            if r.exc_info or self.UNHANDLED.search(r.getMessage())
        ]

    def count(self, pattern: str) -> int:
        return sum(bool(re.search(pattern, r.getMessage())) for r in self.records)
