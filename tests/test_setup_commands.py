"""The README holds exactly two commands that set up a fresh machine, and CI runs both verbatim."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("python3.11 -m venv")]


def test_readme_has_two_setup_commands_and_ci_runs_them_verbatim():
    commands = setup_commands()
    assert len(commands) == 2, commands
    runtime, full = commands
    assert "torch" not in runtime and runtime.endswith("pip install . && s2cv register --sample -o out")
    assert '".[train,test]"' in full and full.endswith("python -m pytest -q tests")
    ci = (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert command in ci, command
