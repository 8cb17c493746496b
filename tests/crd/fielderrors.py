"""Error lines in the API server's words (apimachinery's ``field.Error``): ``path: body``."""

from __future__ import annotations

import json
from typing import Any

OMIT = object()  # field.OmitValueType: objects and lists are not repeated in the message


def show(value: Any) -> str:
    """A value as Go prints it in a field error (%q for strings, JSON for the rest)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def required(path: str, detail: str = "") -> str:
    return f"{path}: Required value" + (f": {detail}" if detail else "")


def forbidden(path: str, detail: str) -> str:
    return f"{path}: Forbidden: {detail}"


def invalid(path: str, value: Any, detail: str) -> str:
    shown = "" if value is OMIT else f": {show(value)}"
    return f"{path}: Invalid value{shown}: {detail}"


def duplicate(path: str, value: Any) -> str:
    return f"{path}: Duplicate value" + ("" if value is OMIT else f": {show(value)}")


def not_supported(path: str, value: Any, supported: list[Any]) -> str:
    options = ", ".join(show(v) for v in supported)
    return f"{path}: Unsupported value: {show(value)}: supported values: {options}"
