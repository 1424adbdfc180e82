"""CLI: help explains, bad paths and options fail before Ray starts (exit code 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from raydist.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["train", "embed", "demo"])
def test_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "--out" in result.output


def test_missing_input_fails_fast(tmp_path):
    result = runner.invoke(app, ["embed", str(tmp_path / "nope"), "--model", "m.pt", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_bad_option_value_is_named(tmp_path):
    result = runner.invoke(app, ["embed", str(tmp_path), "--model", "m.pt", "--out", "o", "--dtype", "int8"])
    assert result.exit_code == 2 and "dtype must be float16 or float32" in result.output


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "raydist.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "embed" in out.stdout
