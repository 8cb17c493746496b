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
    parser.set_defaults(func=_run)


def _read(filename: str) -> str:
    if filename == "-":
        return sys.stdin.read()
    try:
        with open(filename, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read {filename}: {exc.strerror}") from exc


def render(text: str, filename: str = "<input>", warn: Callable[[str], None] | None = None) -> str:
    """The YAML stream for every SmolServe in ``text`` (pure apart from reading the plugin).

    ``warn`` gets one line for each document skipped as a near-miss (a SmolServe with a wrong
    apiVersion or kind). A SmolServe the operator would refuse raises ``UsageError`` naming the
    document (position, kind, name, line) and the field.
    """
    from smolserve.manifests import OperatorConfig, build_children, template_configmap_name
    from smolserve.manifests.common import sha256_hex
    from smolserve.manifests.documents import read_documents, smolserves
    from smolserve.spec import SpecError, load_spec

    config = OperatorConfig.from_env()
    serves, skipped = smolserves(read_documents(text, filename), filename)
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
        if spec.template.source == "inline":
            assert spec.template.inline is not None
            sha = sha256_hex(spec.template.inline)
            cm_name, cm_hash = template_configmap_name(spec.name, sha), sha[:8]
            notes.append(
                f"# template ConfigMap {cm_name} is published by the template Job once verified"
            )
        else:
            cm_name, cm_hash = f"{spec.name}-chat-template-{PENDING}", PENDING
            notes.append(
                f"# template ConfigMap: its name <name>-chat-template-<sha8> is known only after "
                f"the template Job has run (source: {spec.template.source}); "
                f"'{PENDING}' stands in for it below"
            )
        children = build_children(spec, config, template_configmap=cm_name, template_hash=cm_hash)
        out.append("\n".join(notes) + "\n" + _dump(children))
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
    sys.stdout.write(render(_read(args.filename), shown, warn=_warn))
    return 0
