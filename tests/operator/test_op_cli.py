"""``smolserve operator``'s command line (running it is what the benchmark does)."""

from __future__ import annotations

import pytest

from smolserve.cli import main


def test_operator_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["operator", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    options = ("--namespace", "--peering", "--standalone", "--liveness-port", "--no-scanning")
    for option in (*options, "--verbose"):
        assert option in out


def test_peering_and_standalone_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["operator", "--peering", "p", "--standalone"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
