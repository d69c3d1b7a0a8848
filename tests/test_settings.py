"""Settings precedence (defaults < rag.toml < RAG_* env < flags) and the index fingerprint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import rag.ingest.metadata
from rag.ingest.cleaning import OUTLETS
from rag.settings import Settings


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings().top_k == 5
    (tmp_path / "rag.toml").write_text("top_k = 7\nchunk_tokens = 96\n")
    assert (Settings().top_k, Settings().chunk_tokens) == (7, 96)
    monkeypatch.setenv("RAG_TOP_K", "3")
    assert (Settings().top_k, Settings().chunk_tokens) == (3, 96)
    assert Settings().with_overrides(top_k=9, model=None).top_k == 9


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_TOP_K", "0")
    with pytest.raises(ValueError):
        Settings()


def test_fingerprint_changes_with_index_shaping_settings_only() -> None:
    base = Settings()
    same = base.index_fingerprint("weights", "multilingual")
    assert base.with_overrides(top_k=2).index_fingerprint("weights", "multilingual") == same
    assert base.with_overrides(multilingual_weight=0).index_fingerprint("weights", "multilingual") == same
    assert base.with_overrides(chunk_tokens=96).index_fingerprint("weights", "multilingual") != same
    assert base.with_overrides(embed_precision="float32").index_fingerprint("weights", "multilingual") != same
    assert base.index_fingerprint("other-weights", "multilingual") != same
    assert base.index_fingerprint("weights", "other-multilingual") != same


def test_fingerprint_changes_with_the_outlet_table_and_metadata_patterns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outlets and authors are stored with every chunk: editing what finds them makes the index stale."""
    base = Settings()
    same = base.index_fingerprint("weights", "multilingual")
    with monkeypatch.context() as patch:
        patch.setitem(OUTLETS, "Neue Zeitung", re.compile(r"\bNeue Zeitung\b"))
        assert base.index_fingerprint("weights", "multilingual") != same
    with monkeypatch.context() as patch:
        patch.setitem(OUTLETS, "Novastan", re.compile(r"\bNovastan\b|novastan\.org"))
        assert base.index_fingerprint("weights", "multilingual") != same
    with monkeypatch.context() as patch:
        patch.setattr(rag.ingest.metadata, "_BYLINE", re.compile(r"^Von (?P<author>\w+)$", re.MULTILINE))
        assert base.index_fingerprint("weights", "multilingual") != same
    assert base.index_fingerprint("weights", "multilingual") == same
