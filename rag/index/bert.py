"""A BERT sentence encoder in numpy: the packaged MiniLM without torch.

A one-shot `rag ask` embeds one question, and importing torch and sentence-transformers
to do it took most of the ~5 s before retrieval (issue 16). A sentence-transformers
folder that is a plain BERT with mean pooling and normalisation (all-MiniLM-L6-v2 is
one) is small enough to run as a few numpy matrix products: the weights come from its
safetensors file, the token ids from its `tokenizer.json` through `tokenizers`
(Rust, no torch), truncated at the folder's `max_seq_length` as sentence-transformers
does. The vectors equal sentence-transformers' to float32 rounding (the tests compare
them). `rag.index.embed` gives it the fingerprint (the sha256 of the weight files, as
for sentence-transformers), so an index built either way is read by the other.

Leaves out: every other architecture or pooling (`supports` says no and
`rag.index.embed` uses sentence-transformers), token type ids other than 0, and
half precision.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.errors import RagError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

_MODULES = (
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
)
_ATTENTION_MASKED = np.float32(-1e9)  # added to padded keys' scores: exp() makes their weight 0
# Up to this many texts run on one thread (numpy's BLAS here, torch in `rag.index.embed`): a
# question's few small products lose more to waking a second thread (which waits whenever
# the LLM holds the other core) than they gain.
SMALL_BATCH = 4
_TOKENIZE_SLICE = 1024  # texts tokenized at once (the Rust tokenizer parallelises within a slice)


def supports(model_dir: Path) -> bool:
    """Whether `model_dir` is a BERT with mean pooling and normalisation in safetensors."""
    try:
        modules = [m["type"] for m in json.loads((model_dir / "modules.json").read_text())]
        config = json.loads((model_dir / "config.json").read_text())
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return False
    mean_only = pooling.get("pooling_mode_mean_tokens") and not any(
        pooling.get(mode)
        for mode in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    )
    return (
        tuple(modules) == _MODULES
        and config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and bool(mean_only)
        and (model_dir / "model.safetensors").is_file()
        and (model_dir / "tokenizer.json").is_file()
    )


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x), with the error function."""
    from scipy.special import erf

    return x * np.float32(0.5) * (np.float32(1.0) + erf(x * np.float32(1 / math.sqrt(2))))


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class BertSentenceEncoder:
    """Tokenising, batching by length and mean pooling; subclasses compute the hidden states.

    Shared by the numpy encoder below (questions) and `rag.index.onnx_bert` (indexing).
    """

    def __init__(self, name: str, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self.name = name
        self.model_dir = model_dir
        self.config = json.loads((model_dir / "config.json").read_text())
        settings = json.loads((model_dir / "sentence_bert_config.json").read_text())
        self._tokenizer: Tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(int(settings["max_seq_length"]))
        self._tokenizer.no_padding()

    @property
    def dimension(self) -> int:
        return int(self.config["hidden_size"])

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        on_progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed `texts` in batches of similar length (longest first), so padding stays small."""
        ids = self._token_ids(texts)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        longest_first = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        with self._threads(len(texts)):
            for offset in range(0, len(texts), batch_size):
                rows = longest_first[offset : offset + batch_size]
                vectors[rows] = self._embed([ids[i] for i in rows])
                if on_progress is not None:
                    on_progress(offset + len(rows))
        return vectors

    def _token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's token ids as a compact array, tokenized a slice at a time.

        The tokenizer's encodings hold strings, offsets and masks besides the ids: all of
        49k chunks' at once took ~1 GB of a build's peak memory (docs/scaling.md).
        """
        ids: list[np.ndarray] = []
        for offset in range(0, len(texts), _TOKENIZE_SLICE):
            encodings = self._tokenizer.encode_batch(list(texts[offset : offset + _TOKENIZE_SLICE]))
            ids += [np.array(encoding.ids, dtype=np.int32) for encoding in encodings]
        return ids

    def _threads(self, texts: int) -> AbstractContextManager[object]:
        """How many threads embed `texts` texts; the session or library default unless overridden."""
        return nullcontext()

    def _embed(self, batch: list[np.ndarray]) -> np.ndarray:
        width = max(len(ids) for ids in batch)
        tokens = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.float32)
        for row, ids in enumerate(batch):
            tokens[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1.0
        hidden = self._hidden_states(tokens, mask)
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        mean = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return (mean / norms).astype(np.float32)

    def _hidden_states(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The last layer's (batch, tokens, hidden) states of padded token ids."""
        raise NotImplementedError


class NumpyBertEncoder(BertSentenceEncoder):
    """Mean-pooled, L2-normalised BERT sentence vectors computed with numpy (see module doc)."""

    def __init__(self, name: str, model_dir: Path) -> None:
        from safetensors.numpy import load_file
        from threadpoolctl import ThreadpoolController

        super().__init__(name, model_dir)
        self._heads = int(self.config["num_attention_heads"])
        self._layers = int(self.config["num_hidden_layers"])
        self._eps = float(self.config["layer_norm_eps"])
        weights = load_file(str(model_dir / "model.safetensors"))
        self._weights = {key.removeprefix("bert."): value for key, value in weights.items()}
        self._threadpools = ThreadpoolController()  # finds numpy's BLAS once, not per call

    def _threads(self, texts: int) -> AbstractContextManager[object]:
        """A few texts (a question) on one BLAS thread, more on all."""
        limited: AbstractContextManager[object] = self._threadpools.limit(
            limits=1 if texts <= SMALL_BATCH else None, user_api="blas"
        )
        return limited

    def _hidden_states(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        hidden = self._embeddings(tokens)
        key_bias = (1.0 - mask)[:, None, None, :] * _ATTENTION_MASKED
        for layer in range(self._layers):
            hidden = self._layer(hidden, key_bias, f"encoder.layer.{layer}.")
        return hidden

    def _embeddings(self, tokens: np.ndarray) -> np.ndarray:
        w = self._weights
        if tokens.shape[1] > w["embeddings.position_embeddings.weight"].shape[0]:
            raise RagError(f"{self.name}: a text is longer than the model's positions — lower max_seq_length")
        summed = (
            w["embeddings.word_embeddings.weight"][tokens]
            + w["embeddings.position_embeddings.weight"][: tokens.shape[1]]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        return _layer_norm(
            summed, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self._eps
        )

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        """A linear layer as one 2-D product (BLAS), not one per batch row."""
        flat = x.reshape(-1, x.shape[-1]) @ self._weights[f"{name}.weight"].T + self._weights[f"{name}.bias"]
        return flat.reshape(*x.shape[:-1], -1)

    def _layer(self, hidden: np.ndarray, key_bias: np.ndarray, prefix: str) -> np.ndarray:
        w = self._weights
        batch, width, size = hidden.shape
        head = size // self._heads

        def split(x: np.ndarray) -> np.ndarray:  # (batch, width, size) -> (batch, heads, width, head)
            return x.reshape(batch, width, self._heads, head).transpose(0, 2, 1, 3)

        query = split(self._dense(hidden, f"{prefix}attention.self.query"))
        key = split(self._dense(hidden, f"{prefix}attention.self.key"))
        value = split(self._dense(hidden, f"{prefix}attention.self.value"))
        # einsum, because numpy's stacked matmul does not batch these products through BLAS
        scores = np.einsum("bhqd,bhkd->bhqk", query, key, optimize=True) * np.float32(1 / math.sqrt(head))
        weights = _softmax(scores + key_bias)
        context = np.einsum("bhqk,bhkd->bqhd", weights, value, optimize=True).reshape(batch, width, size)
        attended = _layer_norm(
            hidden + self._dense(context, f"{prefix}attention.output.dense"),
            w[f"{prefix}attention.output.LayerNorm.weight"],
            w[f"{prefix}attention.output.LayerNorm.bias"],
            self._eps,
        )
        expanded = _gelu(self._dense(attended, f"{prefix}intermediate.dense"))
        return _layer_norm(
            attended + self._dense(expanded, f"{prefix}output.dense"),
            w[f"{prefix}output.LayerNorm.weight"],
            w[f"{prefix}output.LayerNorm.bias"],
            self._eps,
        )
