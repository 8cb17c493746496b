"""``job publish-template``: take or generate a chat template, verify it, publish its ConfigMap.

The ConfigMap is immutable and content-addressed (``<serve>-chat-template-<sha8>``), so
publishing is idempotent: if it already exists with the same text, only its inputs-hash label
is moved to this Job's inputs.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smolserve import labels
from smolserve.errors import SmolserveError, UsageError
from smolserve.manifests.template import (
    build_template_configmap,
    published_inputs,
    with_published_inputs,
)
from smolserve.template.files import read_text


@dataclass(frozen=True)
class PublishRequest:
    serve: str
    namespace: str
    owner_uid: str | None
    inputs_hash: str
    tokenizer: str
    revision: str | None = None
    variant: str = "fixed"
    close_system_turn: bool = True
    template_file: str | None = None
    template_env: str | None = None
    allow_unverified: bool = False


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def template_text(request: PublishRequest, tokenizer: Any) -> str:
    """The user's template (file or env) or one generated from the tokenizer."""
    if request.template_file:
        return read_text(request.template_file, "template")
    if request.template_env:
        text = os.environ.get(request.template_env)
        if not text:
            raise UsageError(f"environment variable {request.template_env} holds no template")
        return text
    from smolserve.template import generate_template

    generated = generate_template(
        tokenizer, request.variant, close_system_turn=request.close_system_turn
    )
    return generated.text


def verified_text(request: PublishRequest) -> str:
    """Load the tokenizer, obtain the template, verify it; raise with one line if it fails."""
    from smolserve.template import load_tokenizer, verify_template

    tokenizer = load_tokenizer(request.tokenizer, request.revision)
    _log(f"tokenizer: {request.tokenizer}" + (f"@{request.revision}" if request.revision else ""))
    text = template_text(request, tokenizer)
    # The seed variant is judged by its own generation prompts (no-think: bare), the rest by
    # the fixed ones.
    generated_seed = not (request.template_file or request.template_env) and (
        request.variant == "seed"
    )
    report = verify_template(text, tokenizer, prompt_style="seed" if generated_seed else "fixed")
    _log(report.format())
    if not report.ok:
        if request.allow_unverified:
            _log("publishing anyway: this template variant is published unverified by choice")
        else:
            raise SmolserveError(f"template failed verification: {report.summary_line()}")
    return text


# How long a Job waits for the garbage collector to remove a ConfigMap of the same name that
# belongs to a deleted SmolServe of the same name (the owner goes first, its children after).
PREDECESSOR_WAIT_SECONDS = 120.0


def _controller_uid(meta: Any) -> str | None:
    for ref in meta.owner_references or []:
        if ref.controller:
            return ref.uid
    return None


def _create(api: Any, body: dict[str, Any]) -> bool:
    """Create the ConfigMap; False when one of that name exists already."""
    from kubernetes.client.exceptions import ApiException

    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    try:
        api.create_namespaced_config_map(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise SmolserveError(
                f"cannot create ConfigMap {namespace}/{name}: {exc.status} {exc.reason}"
            ) from exc
        return False
    _log(f"created ConfigMap {namespace}/{name}")
    return True


def _read(api: Any, name: str, namespace: str) -> Any:
    """The ConfigMap, or None when it does not exist."""
    from kubernetes.client.exceptions import ApiException

    try:
        return api.read_namespaced_config_map(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise SmolserveError(
            f"ConfigMap {namespace}/{name} exists but cannot be read: {exc.status} {exc.reason}"
        ) from exc


def publish_configmap(
    api: Any, body: dict[str, Any], *, wait_seconds: float = PREDECESSOR_WAIT_SECONDS
) -> str:
    """Create the ConfigMap; accept an existing one of this owner with the same data.

    One that belongs to another owner (a deleted SmolServe of the same name whose children the
    garbage collector has not removed yet) is never taken over: the Job waits until it is gone,
    then creates its own. Returns the ConfigMap's name.
    """
    name = body["metadata"]["name"]
    namespace = body["metadata"]["namespace"]
    owner = (body["metadata"].get("ownerReferences") or [{}])[0].get("uid")
    deadline = time.monotonic() + wait_seconds
    delay = 0.5
    while True:
        if _create(api, body):
            return name
        existing = _read(api, name, namespace)
        if existing is None:
            continue  # deleted in between: create it now
        theirs = _controller_uid(existing.metadata)
        if owner is None or theirs == owner:
            break
        if time.monotonic() >= deadline:
            raise SmolserveError(
                f"ConfigMap {namespace}/{name} still belongs to another owner (uid {theirs}) "
                f"after {wait_seconds:.0f} s; delete it to publish this SmolServe's template"
            )
        _log(f"ConfigMap {namespace}/{name} belongs to another owner (uid {theirs}): waiting")
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
    if (existing.data or {}) != body["data"]:
        raise SmolserveError(f"ConfigMap {namespace}/{name} exists with different content")
    _log(f"ConfigMap {namespace}/{name} already exists with this template")
    _claim_for_inputs(api, existing, body)
    return name


def _claim_for_inputs(api: Any, existing: Any, body: dict[str, Any]) -> None:
    """Record this Job's inputs on an existing ConfigMap with the same template.

    New inputs can yield a template already published (a new model revision, same tokenizer):
    the operator finds the template for its current inputs by the inputs-hash label and the
    inputs-history annotation, so the label moves to these inputs and the history keeps the
    earlier ones (a revert to them still reuses this ConfigMap with no Job). Only metadata
    changes, which an immutable ConfigMap allows.
    """
    from kubernetes.client.exceptions import ApiException

    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    wanted = body["metadata"]["annotations"][labels.INPUTS_HASH]
    short = body["metadata"]["labels"][labels.INPUTS_HASH]
    meta = existing.metadata
    if (meta.annotations or {}).get(labels.INPUTS_HASH) == wanted:
        return
    history = with_published_inputs(published_inputs(meta.labels, meta.annotations), short)
    patch = {
        "metadata": {
            "labels": {labels.INPUTS_HASH: short},
            "annotations": {labels.INPUTS_HASH: wanted, labels.INPUTS_HISTORY: " ".join(history)},
        }
    }
    try:
        api.patch_namespaced_config_map(
            name, namespace, patch, _content_type="application/merge-patch+json"
        )
    except ApiException as exc:
        raise SmolserveError(
            f"cannot relabel ConfigMap {namespace}/{name} for these inputs: "
            f"{exc.status} {exc.reason}"
        ) from exc
    _log(f"ConfigMap {namespace}/{name} now serves inputs {wanted[:8]}")


def publish_template(request: PublishRequest, api: Any) -> str:
    text = verified_text(request)
    body = build_template_configmap(
        serve=request.serve,
        namespace=request.namespace,
        owner_uid=request.owner_uid,
        text=text,
        inputs_hash=request.inputs_hash,
    )
    return publish_configmap(api, body)


def write_termination_message(path: str, message: str) -> None:
    """One line, at most 4 KiB (the kubelet's limit), where the operator reads it."""
    line = " ".join(message.split())
    data = line.encode("utf-8")[:4096].decode("utf-8", "ignore")
    try:
        Path(path).write_text(data, encoding="utf-8")
    except OSError as exc:
        _log(f"cannot write the termination message to {path}: {exc.strerror}")
