"""``smolserve render -f smolserve.yaml``: print the objects the operator would create.

For review and GitOps diffs. The output is the builders' output, unchanged, as a YAML stream.
Two things exist only in a cluster, and the output says so in comments: the SmolServe's uid
(so no ownerReferences), and, unless the template is inline, the name of the verified template
ConfigMap the Job will publish (a placeholder stands in for it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from smolserve import labels
from smolserve.errors import UsageError

PENDING = "pending-template-job"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render",
        help="print the Kubernetes objects the operator creates for a SmolServe (YAML stream)",
        description="Print the objects the operator would create for the SmolServes in a file.",
    )
    parser.add_argument(
        "-f",
        "--filename",
        required=True,
        help="SmolServe manifest (YAML, may hold several documents; '-' reads stdin)",
    )
    parser.add_argument(
        "--template-configmap",
        metavar="NAME",
        help="the verified template ConfigMap to serve (<name>-chat-template-<sha8>, as "
        "'kubectl get smol' shows it), instead of a placeholder",
    )
    parser.set_defaults(func=_run)


def _read(filename: str) -> str:
    if filename == "-":
        return sys.stdin.read()
    try:
        with open(filename, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read {filename}: {exc.strerror}") from exc


def _source_sha256(documents: list[Any], spec: Any) -> str | None:
    """sha256 of a configMap template source given in the same stream (``kustomize build``)."""
    ref = spec.template.config_map_ref
    if ref is None:
        return None
    for doc in documents:
        body = doc.body if isinstance(doc.body, dict) else {}
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if body.get("kind") == "ConfigMap" and meta.get("name") == ref.name:
            text = (body.get("data") or {}).get(ref.key)
            if isinstance(text, str):
                from smolserve.manifests.common import sha256_hex

                return sha256_hex(text)
    return None


def render(
    text: str,
    filename: str = "<input>",
    warn: Callable[[str], None] | None = None,
    *,
    template_configmap: str | None = None,
) -> str:
    """The YAML stream of ``desired_state`` for every SmolServe in ``text``.

    ``warn`` gets one line for each document skipped as a near-miss (a SmolServe with a wrong
    apiVersion or kind). A SmolServe the operator would refuse raises ``UsageError`` naming the
    document (position, kind, name, line) and the field. ``template_configmap``: the verified
    template ConfigMap to serve (known from a cluster); without it, an inline template's name
    is computed and any other source gets a placeholder. A ``source: configMap`` template found
    in the same stream is hashed in, so the template Job's name is the one the operator uses.
    """
    from smolserve.manifests import (
        OperatorConfig,
        ServedTemplate,
        desired_state,
        template_inputs_hash,
    )
    from smolserve.manifests.common import sha256_hex
    from smolserve.manifests.documents import read_documents, smolserves
    from smolserve.spec import SpecError, load_spec

    config = OperatorConfig.from_env()
    documents = read_documents(text, filename)
    serves, skipped = smolserves(documents, filename)
    if warn is not None:
        for line in skipped:
            warn(line)
    out: list[str] = []
    for doc in serves:
        try:
            spec = load_spec(doc.body)
        except SpecError as exc:
            raise UsageError(f"{filename}: {doc.describe()}: {exc}") from exc
        where = f"{spec.namespace}/{spec.name}" if spec.namespace else spec.name
        notes = [f"# smolserve render: {labels.KIND} {where}"]
        if not spec.uid:
            notes.append(
                "# ownerReferences are added by the operator (the uid exists only in a cluster)"
            )
        source = _source_sha256(documents, spec)
        if spec.template.config_map_ref is not None and source is None:
            notes.append(
                f"# template source ConfigMap {spec.template.config_map_ref.name!r} is not in "
                "this input: the template Job's name below does not include its text's hash"
            )
        if template_configmap:
            template = ServedTemplate(template_configmap, template_configmap.rsplit("-", 1)[-1])
        elif spec.template.source == "inline":
            assert spec.template.inline is not None
            template = ServedTemplate.for_text(spec.name, sha256_hex(spec.template.inline))
            notes.append(
                f"# template ConfigMap {template.configmap} is published by the template Job "
                "once verified"
            )
        else:
            template = ServedTemplate(f"{spec.name}-chat-template-{PENDING}", PENDING)
            notes.append(
                f"# template ConfigMap: its name <name>-chat-template-<sha8> is known only after "
                f"the template Job has run (source: {spec.template.source}); "
                f"'{PENDING}' stands in for it below"
            )
        inputs = template_inputs_hash(spec, config, source_sha256=source)
        # Until a template is known, a Job publishes one (with its RBAC); a known template
        # means the operator has nothing to publish.
        desired = desired_state(
            spec, config, inputs_hash=inputs, template=template, publishing=not template_configmap
        )
        out.append("\n".join(notes) + "\n" + _dump(desired.objects()))
    return "---\n".join(out)


def _dump(objects: list[dict[str, Any]]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, represent_str)
    return yaml.dump_all(objects, Dumper=Dumper, sort_keys=False, explicit_start=False)


def _warn(line: str) -> None:
    print(f"smolserve: warning: {line}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    shown = "<stdin>" if args.filename == "-" else args.filename
    text = _read(args.filename)
    sys.stdout.write(render(text, shown, warn=_warn, template_configmap=args.template_configmap))
    return 0
