"""The README's examples run as written: each ```python block of the sections below in a fresh interpreter, each
```ipython block as a cell of one fresh IPython shell."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
#: The sections whose examples are run, by the start of their headings.
SECTIONS = ("## Power timeline", "## Prometheus", "## Notebooks")


def blocks(heading, language):
    """The code blocks of ``language`` in the README section that starts with ``heading``."""
    text = README.read_text()
    start = text.index("\n" + heading)
    end = text.find("\n## ", start + 1)
    section = text[start:end if end > 0 else None]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_each_section_has_a_runnable_example():
    for heading in SECTIONS:
        assert blocks(heading, "python") or blocks(heading, "ipython"), heading


@pytest.mark.parametrize("heading", [h for h in SECTIONS if blocks(h, "python")])
def test_the_python_examples_run(heading, tmp_path):
    for code in blocks(heading, "python"):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip(), "an example prints what it shows"
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


@pytest.mark.parametrize("heading", [h for h in SECTIONS if blocks(h, "ipython")])
def test_the_ipython_examples_run_as_cells(heading, tmp_path):
    pytest.importorskip("IPython")
    cells = blocks(heading, "ipython")
    driver = textwrap.dedent(f"""
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config
        config = Config()
        config.HistoryManager.enabled = False
        shell = InteractiveShell.instance(config=config)
        for cell in {cells!r}:
            result = shell.run_cell(cell)
            assert result.success, result.error_before_exec or result.error_in_exec
        print(type(shell.user_ns["_measurement"]).__name__)
    """)
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}  # IPython's history stays out of ~
    proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "total" in proc.stdout and proc.stdout.strip().endswith("Measurement")
