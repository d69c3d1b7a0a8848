"""The embedding stage on the real packaged MiniLM: vectors, similarity, token counts, fingerprints."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from rag.embed import load_embedder, load_token_counter, resolve_model_dir, weights_fingerprint
from rag.errors import RagError
from rag.settings import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    from rag.embed import Embedder


def test_vectors_are_normalised_float32_rows_of_model_dimension(minilm: Embedder) -> None:
    texts = ["Tokajew empfing den russischen Energieminister.", "Kasachstan tritt dem Abkommen bei.", "Ja."]
    vectors = minilm.encode(texts)
    assert minilm.dimension == 384
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_score_higher_than_unrelated(minilm: Embedder) -> None:
    query, paraphrase, unrelated = minilm.encode(
        [
            "Der Präsident von Kasachstan telefonierte mit Putin.",
            "Putin und der kasachische Präsident führten ein Telefonat.",
            "Für den Kuchen braucht man Mehl, Zucker und drei Eier.",
        ]
    )
    assert float(query @ paraphrase) > float(query @ unrelated) + 0.2


def test_batching_and_progress_keep_input_order(minilm: Embedder) -> None:
    texts = [f"Satz Nummer {n} über {'lange ' * n}Verhandlungen in Astana." for n in range(7)]
    progress: list[int] = []
    batched = minilm.encode(texts, batch_size=3, on_progress=progress.append)
    one_by_one = np.stack([minilm.encode([text])[0] for text in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    assert progress == [3, 6, 7]


def test_empty_input_gives_empty_matrix(minilm: Embedder) -> None:
    assert minilm.encode([]).shape == (0, 384)


def test_token_counter_matches_embedder_and_omits_special_tokens(
    minilm: Embedder, minilm_token_counter: Callable[[str], int], seeds_dir: Path
) -> None:
    assert minilm_token_counter("") == 0
    assert minilm_token_counter("Kasachstan") == minilm.count_tokens("Kasachstan") > 0
    for seed in sorted(seeds_dir.glob("*.txt")):
        text = seed.read_text(encoding="utf-8")
        assert minilm_token_counter(text) == minilm.count_tokens(text) > 512  # no truncation at 128/512


def test_fingerprint_is_sha_of_weights_and_stable(minilm: Embedder) -> None:
    model_dir = resolve_model_dir(DEFAULT_EMBEDDING_MODEL)
    weights = model_dir / "model.safetensors"
    expected = hashlib.sha256(b"model.safetensors" + weights.read_bytes()).hexdigest()
    assert minilm.fingerprint == expected
    assert weights_fingerprint(model_dir) == expected


def test_fingerprint_changes_with_weight_bytes(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights one")
    first = weights_fingerprint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"weights two")
    assert weights_fingerprint(tmp_path) != first


def test_local_folder_loads_the_same_model(minilm: Embedder) -> None:
    model_dir = resolve_model_dir(DEFAULT_EMBEDDING_MODEL)
    from_path = load_embedder(str(model_dir))
    assert from_path.fingerprint == minilm.fingerprint
    sentence = ["Astana baut Beziehungen zu Peking aus."]
    np.testing.assert_allclose(from_path.encode(sentence), minilm.encode(sentence), atol=1e-6)


@pytest.mark.parametrize("loader", [load_embedder, load_token_counter])
def test_unknown_model_name_is_a_one_line_error(loader: Callable[[str], object]) -> None:
    with pytest.raises(RagError, match="neither a local folder nor in the Hugging Face cache") as error:
        loader("no-such-embedding-model-xyz")
    assert "\n" not in str(error.value)


def test_folder_without_model_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(RagError, match=r"no config\.json"):
        load_embedder(str(tmp_path))
