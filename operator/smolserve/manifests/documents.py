"""The SmolServes in a manifest file: YAML documents with where they start, and which to render.

What ``smolserve render`` reads. Every problem is one line that says where: a YAML error gives
the file, line, column and PyYAML's problem; a document is named by its position in the file,
its kind, name and first line. A document that looks meant as a SmolServe but is not one (an
``apiVersion`` or ``kind`` near-miss) is skipped with the reason, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smolserve import labels
from smolserve.errors import UsageError


@dataclass(frozen=True)
class Document:
    index: int  # 1-based position in the stream, empty documents included
    line: int  # 1-based line where its content starts
    body: Any

    def describe(self) -> str:
        """``document 2 (SmolServe ai/smol, line 12)``; a missing kind or name is said so."""
        body = self.body if isinstance(self.body, dict) else {}
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        kind, name, namespace = body.get("kind"), meta.get("name"), meta.get("namespace")
        if isinstance(name, str) and name:
            name = f"{namespace}/{name}" if isinstance(namespace, str) and namespace else name
        else:
            name = None
        if isinstance(kind, str) and kind:
            what = f"{kind} {name}" if name else f"{kind}, no name"
        else:
            what = f"{name}, no kind" if name else "no kind, no name"
        return f"document {self.index} ({what}, line {self.line})"


def _yaml_error(exc: Exception, text: str, filename: str) -> str:
    """``FILE:LINE:COLUMN: not valid YAML: PROBLEM (CONTEXT at line L, column C)``, from what
    PyYAML reports (its problem and context, each with a mark)."""
    import yaml

    where, problem = filename, str(exc).splitlines()[0]
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            where = f"{filename}:{mark.line + 1}:{mark.column + 1}"
        problem = exc.problem or exc.context or problem
        if exc.problem and exc.context:
            at = exc.context_mark
            problem += f" ({exc.context}"
            problem += f" at line {at.line + 1}, column {at.column + 1})" if at else ")"
    elif isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        where = f"{filename}:{line}:{column}"
    return f"{where}: not valid YAML: {problem}"


def read_documents(text: str, filename: str) -> list[Document]:
    """Every document of the YAML stream ``text``, empty ones included (body ``None``)."""
    import yaml

    docs: list[Document] = []
    try:
        loader = yaml.SafeLoader(text)  # checks the characters first
    except yaml.YAMLError as exc:
        raise UsageError(_yaml_error(exc, text, filename)) from exc
    try:
        while loader.check_node():
            node = loader.get_node()
            docs.append(
                Document(len(docs) + 1, node.start_mark.line + 1, loader.construct_document(node))
            )
    except yaml.YAMLError as exc:
        raise UsageError(_yaml_error(exc, text, filename)) from exc
    finally:
        loader.dispose()
    return docs


def _names() -> tuple[set[str], str]:
    """The lower-cased names a SmolServe goes by (kind, plural, singular, short names), and its
    API group, from the CRD."""
    from smolserve.spec import crd

    names = crd()["spec"]["names"]
    spelled = {names["kind"], names["plural"], names["singular"], *names.get("shortNames", [])}
    return {n.lower() for n in spelled}, crd()["spec"]["group"]


def is_smolserve(body: dict[str, Any]) -> bool:
    return body.get("apiVersion") == labels.API_VERSION and body.get("kind") == labels.KIND


def skip_reason(body: dict[str, Any]) -> str | None:
    """Why a document that looks meant as a SmolServe is not one, or ``None`` for one that is
    a SmolServe or plainly something else (a Secret, a ConfigMap).

    Looks meant as one: its kind is one of the CRD's names in any case (``Smolserve``,
    ``smolserves``, ``smol``), or its apiVersion names the group's first label (``smolserve``).
    """
    if is_smolserve(body):
        return None
    api, kind = body.get("apiVersion"), body.get("kind")
    names, group = _names()
    kind_close = isinstance(kind, str) and kind.lower() in names
    api_close = isinstance(api, str) and group.split(".")[0] in api.lower()
    if not (kind_close or api_close):
        return None
    reasons = []
    if kind != labels.KIND:
        reasons.append(f"kind {kind!r} is not {labels.KIND!r}" if kind else "it has no kind")
    if api != labels.API_VERSION:
        reasons.append(
            f"apiVersion {api!r} is not {labels.API_VERSION!r}" if api else "it has no apiVersion"
        )
    return " and ".join(reasons)


def smolserves(docs: list[Document], filename: str) -> tuple[list[Document], list[str]]:
    """The SmolServe documents, and one line for each near-miss skipped.

    ``UsageError`` for a document that is not a mapping, and for a file without a SmolServe
    (naming the first near-miss, if there was one).
    """
    found, skipped = [], []
    for doc in docs:
        if doc.body is None:
            continue
        if not isinstance(doc.body, dict):
            raise UsageError(f"{filename}: {doc.describe()} is not a mapping")
        if is_smolserve(doc.body):
            found.append(doc)
        elif (reason := skip_reason(doc.body)) is not None:
            skipped.append(f"{filename}: skipped {doc.describe()}: {reason}")
    if not found:
        message = f"{filename}: no {labels.KIND} ({labels.API_VERSION}) in it"
        if skipped:
            first = skipped[0].removeprefix(f"{filename}: ")
            more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
            message += f"; {first}{more}"
        raise UsageError(message)
    return found, skipped
