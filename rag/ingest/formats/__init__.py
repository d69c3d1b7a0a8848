"""Readers for formats other than plain text: saved web pages, PDFs and article collections.

Each module turns a file's raw bytes into `rag.types.Extraction`s: the canonical text
that every span points into, plus the metadata the format itself states. They do no
file I/O (`rag.ingest.read` reads the bytes, enforcing the size limit) and never label
sections or chunk. `extractor_fingerprint()` names the extraction code and the
libraries behind it, so an index built by other extractors is reported as stale.
"""

from __future__ import annotations

import importlib.metadata
import logging

# Bump when an extractor's output changes (the canonical text, hence every stored span).
EXTRACTOR_VERSION = 1
# Libraries whose upgrade can change the extracted text.
EXTRACTION_LIBRARIES = ("trafilatura", "htmldate", "lxml", "pypdf")


def extractor_fingerprint() -> str:
    """EXTRACTOR_VERSION and the installed versions of the extraction libraries (no import)."""
    versions = []
    for name in EXTRACTION_LIBRARIES:
        try:
            versions.append(f"{name}={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name}=missing")
    return ";".join([f"v{EXTRACTOR_VERSION}", *versions])


def quiet_library_logs(*names: str) -> None:
    """Keep the libraries' warnings off stderr (Python prints unhandled warnings there).

    A NullHandler only stops that last-resort printing: an application that
    configures logging still receives the records.
    """
    for name in names:
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
