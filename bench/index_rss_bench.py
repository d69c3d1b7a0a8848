"""Peak memory and wall time of one `rag index` of the 10kGNAD test split, as a user runs it.

Issue 16 asks for `rag index` on 10kGNAD to peak at ≤ 2 GB. The 1,028 articles are
written as `NNNN.txt` into a temporary folder and indexed by the `rag` executable into a
fresh index folder, once (a build takes minutes); the peak RSS is the largest of the
command and its children (`wait4`). index_bench.py measures the phases in-process.
Writes bench/results/index_rss.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from benchlib import machine_info, print_json, run_measured, venv_bin, write_gnad_folder, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="index only the first N articles")
    args = parser.parse_args()
    info = machine_info()
    with tempfile.TemporaryDirectory() as work:
        corpus = Path(work) / "10kgnad"
        articles = write_gnad_folder(corpus, limit=args.limit)
        command = [str(venv_bin("rag")), "--index-dir", str(Path(work) / "index"), "index", str(corpus)]
        measured = run_measured(command, cwd=Path(work))
    data = {
        "machine": info,
        "articles": articles,
        "exit_code": measured["exit_code"],
        "wall_s": measured["seconds"],
        "peak_rss_mb": measured["peak_rss_mb"],
    }
    path = write_result("index_rss", data)
    print_json({key: data[key] for key in ("articles", "exit_code", "wall_s", "peak_rss_mb")})
    print(f"→ {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
