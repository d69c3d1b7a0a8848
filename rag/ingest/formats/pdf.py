"""PDF files: the text layer of every page, with each page's offset kept, via pypdf.

The canonical text is the pages' text joined by a blank line, NFKC-normalised (so
the ligatures of typeset PDFs, "ﬁ", read as the letters "fi") with \\n line
endings; `Extraction.page_starts` holds where each page begins, so a span's page
is known ("S. 3"). Pages are counted from 1 in file order, as a viewer's page box
counts them, not by printed page labels. The file's /Title and /Author are used
when set; its creation date is not (it dates the file, not the article), so the
date comes from a byline in the text as for text files.

A PDF without any text (a scan without OCR), one that needs a password, and one that
pypdf cannot parse are refused with a one-line InputError naming the file.
Left out: OCR, layout analysis (columns are read in pypdf's order), images.
"""

from __future__ import annotations

import io
import re
import unicodedata
from typing import TYPE_CHECKING

from rag.errors import InputError
from rag.ingest.formats import quiet_library_logs
from rag.types import Extraction

if TYPE_CHECKING:
    from pypdf import DocumentInformation, PdfReader

PAGE_BREAK = "\n\n"
# Control characters some PDFs' text layers hold (NUL, form feeds); line breaks and tabs stay.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def extract_pdf(data: bytes, name: str) -> Extraction:
    """The text of every page and where each begins; InputError for scans, encrypted or broken files."""
    from pypdf import PdfReader

    quiet_library_logs("pypdf")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not _opens_without_password(reader):
            raise InputError(f"{name} is encrypted (password-protected) — save a copy without a password")
        pages = [_page_text(page.extract_text()) for page in reader.pages]
        info = reader.metadata
    except InputError:
        raise
    except Exception as error:  # pypdf raises many kinds (PdfReadError, KeyError, zlib.error …) on damage
        raise InputError(
            f"{name} is not a readable PDF ({type(error).__name__}) — it may be damaged or incomplete"
        ) from error
    if not any(pages):
        raise InputError(f"{name} has no text layer (a scan?) — run OCR on it first, e.g. with ocrmypdf")
    page_starts, offset = [], 0
    for text in pages:
        page_starts.append(offset)
        offset += len(text) + len(PAGE_BREAK)
    return Extraction(
        text=PAGE_BREAK.join(pages),
        title=_info_text(info, "title"),
        author=_info_text(info, "author"),
        page_starts=tuple(page_starts),
    )


def _opens_without_password(reader: PdfReader) -> bool:
    """Whether an encrypted PDF opens with the empty user password (only editing is restricted)."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # e.g. AES without the optional `cryptography` package: treat as locked
        return False


def _page_text(text: str | None) -> str:
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", unicodedata.normalize("NFKC", text)).strip()


def _info_text(info: DocumentInformation | None, field: str) -> str | None:
    value = getattr(info, field, None) if info is not None else None
    if not isinstance(value, str):
        return None
    return " ".join(value.split()) or None
