"""llama.cpp states of fixed prompt prefixes on disk, so a new process skips processing them.

The mechanism behind llama.cpp's `--prompt-cache`: after a context has processed a
prompt's fixed prefix (system prompt and examples), its state is written to a file, and
a fresh context of another process loads it instead of processing the prefix again.
Leaves out: deciding which tokens are the fixed prefix (`rag.answering.generate`),
eviction, and sharing between machines.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llama_cpp import Llama


# A prefix shorter than this is cheaper to process than to look up on disk.
MIN_STORED_PREFIX_TOKENS = 64


class PrefixStore:
    """llama.cpp states of fixed prompt prefixes, one file per model, llama.cpp build and prefix.

    The file name hashes everything the state depends on: the weights' sha256, the
    llama-cpp-python version, the context size and the prefix tokens themselves (so the
    prompt file and the chat template are in it). A file is written under a temporary
    name and renamed, with its own sha256 beside it; a file whose hash or tokens do not
    match is deleted and rebuilt, never loaded. Leaves out: eviction (a state is ~30 KB
    per token, one file per prompt and model) and sharing between machines.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, model_sha256: str, n_ctx: int, prefix: list[int]) -> Path:
        import llama_cpp

        key = hashlib.sha256(
            f"{model_sha256}|{llama_cpp.__version__}|{n_ctx}|{','.join(map(str, prefix))}".encode()
        ).hexdigest()[:24]
        return self.directory / f"{key}.state"

    def load(self, llama: Llama, path: Path, prefix: list[int]) -> bool:
        """Put the stored state of `prefix` into `llama`'s context; False if there is none to trust."""
        import ctypes

        import llama_cpp

        digest = path.with_suffix(".sha256")
        try:
            intact = hashlib.sha256(path.read_bytes()).hexdigest() == digest.read_text().strip()
        except OSError:
            return False
        tokens = (llama_cpp.llama_token * len(prefix))()
        count = ctypes.c_size_t(0)
        loaded = intact and llama_cpp.llama_state_load_file(
            llama.ctx, os.fsencode(path), tokens, len(prefix), ctypes.byref(count)
        )
        if loaded and list(tokens[: count.value]) == prefix:
            llama.input_ids[: len(prefix)] = prefix
            llama.n_tokens = len(prefix)
            return True
        llama.n_tokens = 0  # the next evaluation drops whatever a failed load left in the cache
        path.unlink(missing_ok=True)
        digest.unlink(missing_ok=True)
        return False

    def save(self, llama: Llama, path: Path, prefix: list[int]) -> None:
        """Store `llama`'s state, whose cache holds exactly `prefix`, atomically; failures are ignored."""
        import llama_cpp

        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tokens = (llama_cpp.llama_token * len(prefix))(*prefix)
            if not llama_cpp.llama_state_save_file(llama.ctx, os.fsencode(temporary), tokens, len(prefix)):
                return
            digest = hashlib.sha256(temporary.read_bytes()).hexdigest()
            path.with_suffix(".sha256").write_text(digest + "\n")
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only or full cache only costs the next process the prefix's processing
        finally:
            temporary.unlink(missing_ok=True)
