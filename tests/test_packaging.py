"""`pip install .` without -e: the wheel carries the prompts and the question schema it needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_prompts_and_schema_and_loads_them(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path / "wheel"),
            str(REPO),
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = (tmp_path / "wheel").glob("rag-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=600,
    )
    code = (
        "import rag, rag.answering.prompts, rag.evaluation.questions as e; "
        "print(rag.__file__); "
        "print(rag.answering.prompts.prompts_dir()); "
        "names = ('phrase-de', 'phrase-en', 'translate'); "
        "print(sorted(rag.answering.prompts.load_prompt(n).label for n in names))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # not the repo: the installed copy must be the one imported
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(str(target))
    assert out[1] == str(target / "rag" / "prompts")
    assert "phrase-de.v" in out[2] and "translate.v1" in out[2]
    assert (target / "rag" / "data" / "questions.schema.json").is_file()
