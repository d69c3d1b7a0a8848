"""The BERT sentence encoder quantized to int8 and run by ONNX Runtime: for indexing.

MiniLM took three quarters of indexing 10kGNAD on torch, even in bfloat16 (issue 16).
ONNX Runtime with its BERT operator fusions and dynamic int8 quantization of every
op, weights per output channel, took MiniLM's share of a 10kGNAD build from 106.5 s in
bfloat16 to 65.9 s, with vectors at cosine ~0.985 to float32's (bench/README.md). The
int8 model is exported once from the folder's weights (`torch.onnx.export`,
`onnxruntime.transformers.optimizer`, `onnxruntime.quantization.quantize_dynamic`) into
a cache directory, under a name keyed by the weights' sha256 and the versions of torch,
onnx and onnxruntime. It is written atomically; a file that ONNX Runtime cannot load is
exported again, never trusted. Later builds load only ONNX Runtime: no torch.

Leaves out: models `rag.index.bert.supports` rejects, CPUs without AVX512-VNNI (ONNX
Runtime's int8 products can saturate there; `rag.index.embed` keeps torch for both),
and questions, which stay float32 in numpy (`rag.index.bert`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import RagError
from rag.index.bert import BertSentenceEncoder

EXPORT_LIBRARIES = ("torch", "onnx", "onnxruntime")
_OPSET = 17


def computes_int8() -> bool:
    """Whether this CPU has AVX512-VNNI, which ONNX Runtime's int8 products need to stay exact."""
    from numpy._core._multiarray_umath import __cpu_features__

    return bool(__cpu_features__.get("AVX512VNNI"))


def int8_model_path(model_dir: Path, weights_sha256: str, cache_dir: Path) -> Path:
    """Where the int8 export of these weights by these library versions is cached."""
    versions = ";".join(f"{name}={importlib.metadata.version(name)}" for name in EXPORT_LIBRARIES)
    key = hashlib.sha256(f"{weights_sha256};{versions};opset={_OPSET}".encode()).hexdigest()[:16]
    return cache_dir / f"{model_dir.name}-{key}-int8.onnx"


class OnnxBertEncoder(BertSentenceEncoder):
    """Mean-pooled, L2-normalised sentence vectors from an int8 ONNX export of the BERT."""

    def __init__(self, name: str, model_dir: Path, session: Any) -> None:
        super().__init__(name, model_dir)
        self._session = session

    def _hidden_states(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": tokens, "attention_mask": mask.astype(np.int64)}
        hidden: np.ndarray = self._session.run(None, feeds)[0]
        return hidden


def open_int8_session(model_dir: Path, weights_sha256: str, cache_dir: Path, threads: int) -> Any:
    """An ONNX Runtime session on the cached int8 model, exporting it first if needed."""
    path = int8_model_path(model_dir, weights_sha256, cache_dir)
    if path.is_file():
        try:
            return _session(path, threads)
        except Exception:  # damaged or foreign: export again rather than trust it
            path.unlink(missing_ok=True)
    try:
        _export_int8(model_dir, path)
        return _session(path, threads)
    except Exception as error:  # a missing or broken exporter: the user can still index in bfloat16
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RagError(
            f"Cannot make the int8 model of {model_dir.name} ({first_line}) — "
            "reinstall rag's dependencies, or set embed_precision = bfloat16"
        ) from error


def _session(path: Path, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: the core never writes to the terminal
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_int8(model_dir: Path, target: Path) -> None:
    """Export, fuse and quantize the BERT of `model_dir` to `target` atomically (caller: offline)."""
    import onnx
    import torch
    import transformers.utils.logging
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    # The eager attention exports as the pattern ONNX Runtime fuses into its Attention op.
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True)
    bert.eval()

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            types = torch.zeros_like(input_ids)
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=types)[0]

    sample = torch.tensor([[1, 2, 3], [1, 2, 0]])  # any ids below the vocabulary size
    axes = {name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "hidden")}
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as work, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported, fused, quantized = (Path(work) / name for name in ("fp32.onnx", "fused.onnx", "int8.onnx"))
        torch.onnx.export(
            HiddenStates().eval(),
            (sample, (sample != 0).long()),
            str(exported),
            input_names=["input_ids", "attention_mask"],
            output_names=["hidden"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            dynamo=False,
        )
        heads, size = bert.config.num_attention_heads, bert.config.hidden_size
        optimized = optimize_model(str(exported), model_type="bert", num_heads=heads, hidden_size=size)
        optimized.save_model_to_file(str(fused))
        logging.disable(logging.WARNING)  # the quantizer advises on the root logger
        try:
            quantize_dynamic(
                str(fused),
                str(quantized),
                weight_type=QuantType.QInt8,
                per_channel=True,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            logging.disable(logging.NOTSET)
        os.replace(quantized, target)
