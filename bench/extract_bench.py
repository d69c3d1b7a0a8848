"""Extraction benchmark: reading saved web pages and PDFs into documents, against plain text.

For each format it times `rag.ingest.read.read_document` (what `rag index` does per file
before chunking: read, extract, metadata, section labels) on the real files, and side
by side, interleaved in rotating order, the same on a `.txt` file holding exactly the
extracted canonical text. So the ratio is the price of the format over text. HTML:
the eight pages of ../shared/corpora/html-news; PDF: the TeX-made manuals of Debian's
documentation packages found on this machine (libtasn1-doc, shared-mime-info) and a
PDF of the first 10kGNAD articles made with fpdf2 (one article a page). Rates: files
(pages for PDF) per second and input megabytes per second. Writes
bench/results/extract.json. It measures; it never asserts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import REPO, machine_info, print_json, read_gnad, summarize, write_result

from rag.ingest.read import BYTES_PER_MB, read_document

HTML_NEWS = REPO.parent / "shared" / "corpora" / "html-news"
DEBIAN_PDFS = (
    Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"),
    Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"),
)
LIMIT = 50 * BYTES_PER_MB


def made_pdf(folder: Path, articles: int) -> Path:
    """A PDF of the first 10kGNAD articles, one per page (Helvetica cannot print every character)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for _, text in read_gnad()[:articles]:
        pdf.add_page()
        pdf.multi_cell(0, 5, text.encode("latin-1", "replace").decode("latin-1"))
    path = folder / "10kgnad-articles.pdf"
    pdf.output(str(path))
    return path


def time_files(
    files: list[Path], text_copies: dict[Path, Path], repeats: int
) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per file and round for the file itself and its .txt twin, taking turns."""
    samples: dict[str, dict[str, list[float]]] = {"format": {}, "txt": {}}
    readers: list[tuple[str, Callable[[Path], Path]]] = [
        ("format", lambda p: p),
        ("txt", text_copies.__getitem__),
    ]
    for round_number in range(repeats):
        order = readers if round_number % 2 == 0 else readers[::-1]
        for path in files:
            for kind, pick in order:
                target = pick(path)
                started = time.perf_counter()
                read_document(target, target.name, LIMIT)
                samples[kind].setdefault(path.name, []).append((time.perf_counter() - started) * 1000)
    return samples


def rates(
    files: list[Path], units: dict[Path, int], samples: dict[str, list[float]], sizes: dict[Path, int]
) -> dict:
    """Units (files or pages) per second and MB/s from the median time of each file."""
    medians = {path: sorted(samples[path.name])[len(samples[path.name]) // 2] for path in files}
    seconds = sum(medians.values()) / 1000
    return {
        "seconds_per_pass": round(seconds, 4),
        "units_per_second": round(sum(units.values()) / seconds, 1),
        "mb_per_second": round(sum(sizes[path] for path in files) / BYTES_PER_MB / seconds, 2),
        "per_file_ms": summarize([value for path in files for value in samples[path.name]]),
    }


def measure(name: str, files: list[Path], units: dict[Path, int], work: Path, repeats: int) -> dict[str, Any]:
    twins = {}
    for path in files:
        twin = work / f"{name}-{path.stem}.txt"
        twin.write_text(read_document(path, path.name, LIMIT).text, encoding="utf-8")
        twins[path] = twin
    samples = time_files(files, twins, repeats)
    sizes = {path: path.stat().st_size for path in files}
    twin_sizes = {path: twins[path].stat().st_size for path in files}
    as_format = rates(files, units, samples["format"], sizes)
    as_text = rates(files, units, samples["txt"], twin_sizes)
    return {
        "files": {
            path.name: {"bytes": sizes[path], "units": units[path], "text_bytes": twin_sizes[path]}
            for path in files
        },
        "unit": "page" if name == "pdf" else "file",
        "format": as_format,
        "txt": as_text,
        "format_over_txt_time": round(as_format["seconds_per_pass"] / as_text["seconds_per_pass"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="Rounds over every file (default 7).")
    parser.add_argument("--pdf-articles", type=int, default=40, help="10kGNAD articles in the made PDF.")
    args = parser.parse_args()
    record: dict[str, Any] = {"machine": machine_info(), "repeats": args.repeats, "formats": {}}
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        pages = sorted(HTML_NEWS.glob("*.html"))
        if pages:
            record["formats"]["html"] = measure("html", pages, dict.fromkeys(pages, 1), work, args.repeats)
        pdfs = [path for path in DEBIAN_PDFS if path.is_file()] + [made_pdf(work, args.pdf_articles)]
        page_counts = {path: len(read_document(path, path.name, LIMIT).page_starts) for path in pdfs}
        record["formats"]["pdf"] = measure("pdf", pdfs, page_counts, work, args.repeats)
    print_json(
        {name: {k: v for k, v in data.items() if k != "files"} for name, data in record["formats"].items()}
    )
    print(f"wrote {write_result('extract', record)}")


if __name__ == "__main__":
    main()
