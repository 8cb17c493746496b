"""Packaging: one version, extras per role, and a clear line when a role's extra is missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import smolserve

from .roles import distributions, project
from .scenario import ROOT, python_env


def test_one_version() -> None:
    """smolserve.__version__ is the version: the package's (setuptools reads it), the chart's
    appVersion (Chart.yaml must hold a literal, so it is compared) and the images' tag
    (images/build.sh reads it; tests/chart/test_images.py)."""
    assert "version" not in project() and "version" in project()["dynamic"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'version = { attr = "smolserve.__version__" }' in pyproject
    chart = yaml.safe_load((ROOT / "charts" / "smol" / "Chart.yaml").read_text())
    assert chart["appVersion"] == smolserve.__version__, (
        f"charts/smol/Chart.yaml appVersion {chart['appVersion']!r} differs from "
        f"smolserve.__version__ {smolserve.__version__!r}"
    )


def test_test_extra_installs_every_role() -> None:
    assert distributions("test") >= distributions("all")
    assert distributions("all") == distributions("operator") | distributions("job")


@pytest.mark.parametrize(
    ("missing", "args", "extra"),
    [
        ("kopf", ["operator", "--standalone"], "operator"),
        ("transformers", ["template", "generate", "--tokenizer", "t", "--out", "x"], "template"),
        ("tokenizers", ["testkit", "tokenizer", "--out", "OUT"], "template"),
    ],
    ids=["operator", "template", "testkit"],
)
def test_a_missing_extra_is_one_line(
    missing: str, args: list[str], extra: str, tmp_path: Path
) -> None:
    """A command whose extra is not installed says which one to install, in one line."""
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules[{missing!r}] = None  # what an install without the extra looks like
        from smolserve.cli import main
        sys.exit(main({args!r}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"smolserve: error: 'smolserve {args[0]}' needs {missing}, which is not installed: "
        f"pip install 'smolserve[{extra}]'"
    ]
