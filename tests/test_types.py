"""The JSON shapes of the shared data types (pure logic; the CLI tests run them through `rag`)."""

from __future__ import annotations

import json

from rag.types import IndexReport


def test_index_report_json_names_pairs_and_rounds_seconds() -> None:
    report = IndexReport(
        added=["a.txt"],
        unchanged=["b.txt"],
        duplicates=[("copy.txt", "a.txt")],
        skipped=[("scan.pdf", "no text layer")],
        chunks_total=12,
        chunks_embedded=3,
        seconds=1.23456,
    )
    data = json.loads(json.dumps(report.to_json("index")))
    assert data == {
        "added": ["a.txt"],
        "updated": [],
        "removed": [],
        "unchanged": ["b.txt"],
        "duplicates": [{"copy": "copy.txt", "original": "a.txt"}],
        "skipped": [{"path": "scan.pdf", "reason": "no text layer"}],
        "chunks": 12,
        "chunks_embedded": 3,
        "seconds": 1.235,
        "index_dir": "index",
    }
