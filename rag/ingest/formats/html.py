"""Saved web pages (`.html`, `.htm`): article text, reader comments and metadata via trafilatura.

trafilatura finds the article and drops navigation, cookie banners, teasers, ads and
scripts; it also returns the reader comments it finds on the page. The canonical text
is composed from its output, one paragraph a block:

    <title>

    <paragraph>

    …

    Kommentare

    <comment>
    …

(the title is left out when the article text already opens with it; the comment part
only when there are comments). `Extraction.comments_start` points at the
"Kommentare" line, so the comments become a labelled `comments` section as in text
files. The same bytes and library versions always give the same text.

Metadata is trafilatura's, with three corrections found on real pages:
- date: htmldate trusts a header `last-modified` or a stale `dateCreated` over the
  date printed on the page, so the date of the page without its `<meta>` tags is
  asked for too, and the earlier of the two is the publication date;
- outlet: the publisher the page declares (JSON-LD `publisher.name`, then
  `og:site_name`, then `application-name`) comes before trafilatura's guess, which
  may be a Twitter handle ("Futurezoneat") or the meta author with its address;
- author: only parts that look like a person's name are kept ("SPIEGEL ONLINE;
  Hamburg; Germany" is the publisher); when none is left, trafilatura's search of
  the page's byline elements is asked without the meta author.
A title ending in the site's name ("… » SciLogs - Wissenschaftsblogs") loses it.
Left out: the page's URL, images and tables' layout (table cells become text).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rag.errors import InputError
from rag.ingest.formats import quiet_library_logs
from rag.types import Extraction

if TYPE_CHECKING:
    from lxml.html import HtmlElement

COMMENTS_HEADING = "Kommentare"
PARAGRAPH_BREAK = "\n\n"
_PERSON_NAME = re.compile(r"^[A-ZÄÖÜ][\w'’.-]+(?:\s+(?:von|van|de|der|zu)?\s*[A-ZÄÖÜ][\w'’.-]+){1,3}$")
_NOT_A_PERSON = re.compile(
    r"\b(gmbh|ag|kg|verlag|redaktion|online|medien|media|zeitung|agentur|news|dpa|afp|reuters|staff)\b",
    re.IGNORECASE,
)
_TITLE_SEPARATOR = re.compile(r"\s+[|»›–—-]\s+")
_DATE_FORMAT = "%Y-%m-%d"


def extract_html(data: bytes, name: str) -> Extraction:
    """The canonical text and metadata of a saved page; InputError when it holds no article."""
    import trafilatura
    from trafilatura.settings import Document

    quiet_library_logs("trafilatura", "htmldate", "courlan")
    tree = trafilatura.load_html(data)
    if tree is None:
        raise InputError(f"{name} is not a readable HTML page — save the page again as HTML")
    declared_outlet = _declared_outlet(tree)
    shown_date = _date_shown_on_page(tree)
    result = trafilatura.bare_extraction(tree, include_comments=True, with_metadata=True)  # changes `tree`
    body = _paragraphs(result.text) if isinstance(result, Document) else []
    if not isinstance(result, Document) or not body:
        raise InputError(f"{name}: no article text found on the page — save the article page itself")
    outlet = declared_outlet or result.sitename or None
    site_words = _site_words(outlet, urlsplit(result.url or "").hostname or result.hostname)
    title = _without_site_suffix(result.title or "", site_words) or None
    blocks = body if title is None or _same_words(body[0], title) else [title, *body]
    text = PARAGRAPH_BREAK.join(blocks)
    comments = _paragraphs(result.comments)
    comments_start = None
    if comments:
        text += PARAGRAPH_BREAK
        comments_start = len(text)
        text += PARAGRAPH_BREAK.join([COMMENTS_HEADING, *comments])
    dates = [date for date in (result.date, shown_date) if date]
    return Extraction(
        text=text + "\n",
        title=title,
        author=_person_names(result.author, site_words) or _byline_author(data, site_words),
        date=min(dates) if dates else None,
        outlet=outlet,
        comments_start=comments_start,
    )


def _paragraphs(text: str | None) -> list[str]:
    """trafilatura's lines, stripped, without empty ones."""
    return [line.strip() for line in (text or "").split("\n") if line.strip()]


def _same_words(first: str, second: str) -> bool:
    return first.split() == second.split()


def _json_objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object nested in `value` (JSON-LD puts articles in lists and @graph)."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _json_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_objects(item)


def _declared_outlet(tree: HtmlElement) -> str | None:
    """The publisher's name as the page declares it about itself, if it does."""
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text_content())
        except ValueError:
            continue
        for item in _json_objects(data):
            publisher = item.get("publisher")
            if isinstance(publisher, dict) and isinstance(publisher.get("name"), str):
                name = publisher["name"].strip()
                if name:
                    return name
    for query in ('//meta[@property="og:site_name"]/@content', '//meta[@name="application-name"]/@content'):
        values = [value.strip() for value in tree.xpath(query) if value.strip()]
        if values:
            return str(values[0])
    return None


def _date_shown_on_page(tree: HtmlElement) -> str | None:
    """htmldate's original date of the page without its <meta> tags: what the page prints."""
    from htmldate import find_date

    shown = copy.deepcopy(tree)
    for meta in shown.xpath("//meta"):
        meta.drop_tree()
    found = find_date(shown, original_date=True, extensive_search=False, outputformat=_DATE_FORMAT)
    return str(found) if found else None


def _site_words(outlet: str | None, hostname: str | None) -> set[str]:
    """Casefolded names of the site: the outlet and the distinctive labels of its host name."""
    words = {outlet.casefold()} if outlet else set()
    labels = (hostname or "").casefold().split(".")
    words.update(label for label in labels[:-1] if len(label) >= 4 and label != "www")
    return words


def _names_site(text: str, site_words: set[str]) -> bool:
    folded = text.casefold()
    return any(word in folded for word in site_words)


def _without_site_suffix(title: str, site_words: set[str]) -> str:
    """`title` without a trailing " » SiteName - Blogs" / " | SiteName" part that names the site.

    The cut is at the rightmost separator whose remainder names the site, so a
    separator inside the title itself ("Lyft - der Uber-Rivale | futurezone.at") stays.
    """
    title = " ".join(title.split())
    for separator in reversed(list(_TITLE_SEPARATOR.finditer(title))):
        if _names_site(title[separator.end() :], site_words):
            return title[: separator.start()]
    return title


def _person_names(author: str | None, site_words: set[str]) -> str | None:
    """The parts of trafilatura's "A; B" author string that look like people, not the publisher."""
    people = [
        part.strip()
        for part in (author or "").split(";")
        if _PERSON_NAME.match(part.strip())
        and not _NOT_A_PERSON.search(part)
        and not _names_site(part, site_words)
    ]
    return "; ".join(people) or None


def _byline_author(data: bytes, site_words: set[str]) -> str | None:
    """trafilatura's search of the page's byline elements, with the meta author taken out."""
    from trafilatura import extract_metadata, load_html

    tree = load_html(data)
    if tree is None:
        return None
    for meta in tree.xpath('//meta[@name="author"]'):
        meta.drop_tree()
    return _person_names(extract_metadata(tree).author, site_words)
