"""The two patch formats a Kubernetes API server applies for us: JSON merge patch and JSON patch.

Pure functions over plain JSON values; the emulator turns their errors into HTTP answers.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchTestFailed(Exception):
    """A JSON-patch ``test`` operation did not match (the API answers 422)."""


class PatchInvalid(Exception):
    """A patch that cannot be applied to this document (the API answers 422 too)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: dicts merge recursively, ``null`` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchInvalid(f"JSON pointer must start with '/': {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchInvalid(f"path not found: /{'/'.join(parts)}")
    return node


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 ``add``, ``remove``, ``replace`` and ``test`` (what kopf and kubectl send)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        if kind == "test":
            if _get(doc, parts) != op.get("value"):
                raise PatchTestFailed(f"test failed at {op.get('path')}")
            continue
        if not parts:
            raise PatchInvalid("cannot patch the document root")
        parent, last = _parent(doc, parts), parts[-1]
        if kind in ("add", "replace"):
            value = copy.deepcopy(op.get("value"))
            if isinstance(parent, dict):
                if kind == "replace" and last not in parent:
                    raise PatchInvalid(f"replace of a missing key: {op['path']}")
                parent[last] = value
            elif isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, value)
                else:
                    parent[index] = value
            else:
                raise PatchInvalid(f"cannot {kind} at {op['path']}")
        elif kind == "remove":
            try:
                del parent[int(last) if isinstance(parent, list) else last]
            except (KeyError, IndexError, ValueError) as exc:
                raise PatchInvalid(f"remove of a missing path: {op['path']}") from exc
        else:
            raise PatchInvalid(f"unsupported JSON-patch op: {kind!r}")
    return doc


def _get(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
