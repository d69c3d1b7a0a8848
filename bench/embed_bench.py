"""MiniLM embedding backends side by side: sentence-transformers (torch), numpy, ONNX Runtime.

Issue 16 asks whether query embedding can do without torch, and whether another backend
indexes faster with equal retrieval. On the same texts, in one process, taking turns:
- `torch`: `rag.index.embed.load_embedder` (sentence-transformers on torch), what indexing uses;
- `numpy`: `rag.index.embed.load_query_embedder` (`rag.index.bert`), what questions use;
- `onnx-fp32`, `onnx-int8` and `onnx-int8-matmul`: the same BERT exported with
  `torch.onnx.export` (the TorchScript exporter) and run by onnxruntime, the last two
  after `onnxruntime.quantization.quantize_dynamic` (int8 weights): every quantizable op,
  or only the MatMuls with one scale per output channel. Only when the `onnx` package is
  installed; it is not a dependency of rag (the export needs it).
Measured: single questions (the questions of `evals/` one at a time, p50 ms) for torch
and numpy, and batches (10kGNAD article windows of 90 words, batch 32, longest first,
chunks/s over whole passes) for all; plus each backend's cosine to torch's vectors.
Leaves out: retrieval quality (an int8 model would need `rag eval --retrieval-only` and
germanquad.py on a rebuilt index; its vectors' agreement is reported first).
Writes bench/results/embed.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import GNAD_CSV, REPO, machine_info, print_json, read_gnad, summarize, write_result

from rag.index.embed import Embedder, load_embedder, load_query_embedder, resolve_model_dir
from rag.settings import DEFAULT_EMBEDDING_MODEL

WINDOW_WORDS, WINDOW_STEP = 90, 70
BATCH = 32


def article_windows(limit: int) -> list[str]:
    """Overlapping 90-word windows of the first 10kGNAD articles, about one chunk each."""
    windows: list[str] = []
    for _label, text in read_gnad(GNAD_CSV):
        words = text.split()
        windows += [" ".join(words[i : i + WINDOW_WORDS]) for i in range(0, len(words), WINDOW_STEP)]
        if len(windows) >= limit:
            break
    return windows[:limit]


class OnnxMiniLM:
    """The packaged MiniLM's transformer exported to ONNX, mean-pooled and normalised in numpy."""

    def __init__(self, path: Path, tokenizer: Any) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = tokenizer

    def encode(self, texts: list[str], batch_size: int = BATCH) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for offset in range(0, len(texts), batch_size):
            batch = texts[offset : offset + batch_size]
            encoded = self._tokenizer(
                batch, padding=True, truncation=True, max_length=256, return_tensors="np"
            )
            ids, mask = encoded["input_ids"].astype(np.int64), encoded["attention_mask"].astype(np.int64)
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            weights = mask[:, :, None].astype(np.float32)
            mean = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
            out[offset : offset + len(batch)] = mean / np.linalg.norm(mean, axis=1, keepdims=True)
        return out


def export_onnx(torch_embedder: Embedder, directory: Path) -> dict[str, OnnxMiniLM]:
    """fp32 and two int8 ONNX versions of the model behind `torch_embedder`, or none without `onnx`."""
    try:
        import onnx  # noqa: F401 — torch.onnx.export and the quantizer need it
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return {}
    model = torch_embedder._model  # type: ignore[attr-defined]
    bert, tokenizer = model[0].auto_model, model.tokenizer

    class Transformer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: Any, mask: Any) -> Any:
            return self.bert(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))[0]

    sample = tokenizer(["ein Satz", "noch ein Satz"], return_tensors="pt", padding=True)
    fp32, int8, matmul = (directory / f"minilm{suffix}.onnx" for suffix in ("", "-int8", "-int8-matmul"))
    axes = {name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "hidden")}
    torch.onnx.export(
        Transformer().eval(),
        (sample["input_ids"], sample["attention_mask"]),
        str(fp32),
        input_names=["input_ids", "attention_mask"],
        output_names=["hidden"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    quantize_dynamic(
        str(fp32), str(matmul), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], per_channel=True
    )
    return {
        "onnx-fp32": OnnxMiniLM(fp32, tokenizer),
        "onnx-int8": OnnxMiniLM(int8, tokenizer),
        "onnx-int8-matmul": OnnxMiniLM(matmul, tokenizer),
    }


def timed(encode: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = encode(texts)
    return time.perf_counter() - started, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=1000, help="10kGNAD windows per batch pass")
    parser.add_argument("--rounds", type=int, default=3, help="batch passes per backend, taking turns")
    args = parser.parse_args()
    info = machine_info()
    torch_embedder, numpy_embedder = load_embedder(), load_query_embedder()
    assert resolve_model_dir(DEFAULT_EMBEDDING_MODEL).is_dir()
    backends: dict[str, Callable[[list[str]], np.ndarray]] = {
        "torch": lambda texts: torch_embedder.encode(texts, batch_size=BATCH),
        "numpy": lambda texts: numpy_embedder.encode(texts, batch_size=BATCH),
    }
    with tempfile.TemporaryDirectory() as directory:
        for name, model in export_onnx(torch_embedder, Path(directory)).items():
            backends[name] = model.encode
        questions = [json.loads(line)["question"] for line in (REPO / "evals" / "questions.jsonl").open()]
        single: dict[str, list[float]] = {"torch": [], "numpy": []}
        for question in questions:
            for name in single:
                single[name].append(timed(backends[name], [question])[0] * 1000)
        windows = article_windows(args.windows)
        seconds: dict[str, list[float]] = {name: [] for name in backends}
        vectors: dict[str, np.ndarray] = {}
        names = list(backends)
        for round_number in range(args.rounds):
            for name in names[round_number % len(names) :] + names[: round_number % len(names)]:
                elapsed, vectors[name] = timed(backends[name], windows)
                seconds[name].append(elapsed)
    batch = {
        name: {
            "chunks_per_s": round(len(windows) / min(times), 1),
            "seconds": [round(t, 2) for t in times],
            "cosine_to_torch": {
                "min": float((vectors[name] * vectors["torch"]).sum(axis=1).min()),
                "mean": float((vectors[name] * vectors["torch"]).sum(axis=1).mean()),
            },
        }
        for name, times in seconds.items()
    }
    reference = batch["torch"]["chunks_per_s"]
    data = {
        "machine": info,
        "windows": len(windows),
        "single_question_ms": {name: summarize(times) for name, times in single.items()},
        "batch": batch,
        "batch_speed_over_torch": {
            name: round(b["chunks_per_s"] / reference, 3) for name, b in batch.items()
        },
    }
    path = write_result("embed", data)
    print_json({key: data[key] for key in ("batch_speed_over_torch", "single_question_ms")})
    print(f"→ {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
