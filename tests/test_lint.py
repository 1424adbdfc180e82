"""ruff (lint and format) over the project, as part of the test command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = ["raydist", "tests", "bench", "jobs"]


@pytest.mark.parametrize("args", [["check"], ["format", "--check"]])
def test_ruff(args):
    out = subprocess.run([sys.executable, "-m", "ruff", *args, *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
