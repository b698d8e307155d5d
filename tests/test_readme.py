"""The README is the contract: its two set-up commands are what .ci/run runs, and its quick start runs as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    setup_block = re.search(r"## Set-up: two commands.*?```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in setup_block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make install", "make test"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci == commands
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^install:", makefile, re.M) and re.search(r'-m pytest -m "not slow"', makefile)
    assert re.search(r'^test-slow:\n\t.*-m "slow"', makefile, re.M)


def quick_start_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```bash\npython -c \"\n(.*?)\"\n```", readme, re.S).group(1)
    return block


def test_quick_start_snippet_uses_the_public_api():
    snippet = quick_start_snippet()
    assert "from mmspeech_jax.data import" in snippet
    compile(snippet, "README quick start", "exec")


@pytest.mark.slow
def test_quick_start_runs_as_written(tmp_path):
    """Default corpus (2 000 utterances) from nothing, features, one epoch of batches: README's `python -c`."""
    env = {**os.environ, "MMSPEECH_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", quick_start_snippet()], env=env, capture_output=True, text=True,
                            timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "K=" in result.stdout and "(16," in result.stdout
