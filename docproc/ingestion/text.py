"""Plain text, Markdown and HTML: decoding and visible text."""

import math
import re
from html.parser import HTMLParser
from pathlib import Path

import charset_normalizer

from .errors import NoTextError, TextTooLongError, TooManyPagesError, UnsupportedTypeError
from .normalize import normalize_text
from .sniff import HTML, byte_order_mark

# HTML collapses ASCII whitespace only; a no-break space stays.
_HTML_WHITESPACE = re.compile(r"[ \t\n\r\f]+")
# No encoding takes more than 4 bytes per character, so a larger file holds more than max_chars characters.
_MAX_BYTES_PER_CHAR = 4


def read_text_document(
    path: Path, content_type: str, *, max_chars: int, max_pages: int, page_chars: int
) -> list[str]:
    """The normalised pages of a plain-text, Markdown or HTML file (`paginate`); Markdown keeps its syntax.

    Pages grow beyond `page_chars` where needed to stay within `max_pages`; form feeds beyond it are an error.
    """
    if path.stat().st_size > _MAX_BYTES_PER_CHAR * max_chars + _MAX_BYTES_PER_CHAR:
        raise TextTooLongError.over(max_chars)
    text = decode_text(path.read_bytes())
    if content_type == HTML:
        text = html_to_text(text)
    pages = [normalize_text(page, from_pdf=False) for page in text.split("\f")]
    if sum(map(len, pages)) > max_chars:
        raise TextTooLongError.over(max_chars)
    if not any(pages):
        raise NoTextError("The document contains no text.")
    if len(pages) > max_pages:
        raise TooManyPagesError(
            f"The text has {len(pages):,} form-feed pages; at most {max_pages:,} are accepted."
        )
    if len(pages) > 1:
        return pages
    # A page ends at most half way before its size, so pages twice the average size stay within max_pages.
    return paginate(pages[0], max(page_chars, 2 * math.ceil(len(pages[0]) / max_pages)))


# Where a page may end early: at a blank line, or before a Markdown heading.
_PARAGRAPH_END = re.compile(r"\n(?=\n|#{1,6} )")


def paginate(text: str, page_chars: int) -> list[str]:
    """Pages of at most about `page_chars` characters, so that a summary of a long text can cite its pages.

    A page ends at the last paragraph end (blank line or heading) in its second half, else at the last line
    break, else (one huge line) at the last space. A text with form feeds keeps those pages instead.
    """
    pages: list[str] = []
    while len(text) > page_chars:
        window = text[: page_chars + 1]
        half = page_chars // 2
        ends = [match.start() for match in _PARAGRAPH_END.finditer(window, half)]
        end = ends[-1] if ends else max(window.rfind("\n", half), window.rfind(" ", half))
        if end <= 0:
            end = page_chars
        pages.append(text[:end].strip())
        text = text[end:].strip()
    return [*pages, text]


def decode_text(data: bytes) -> str:
    """Bytes to text: a byte-order mark wins, then UTF-8, then charset-normalizer's guess."""
    bom = byte_order_mark(data)
    if bom is not None:
        mark, codec = bom
        return data[len(mark) :].decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _guess_legacy_encoding(data)


# charset-normalizer often ranks another Latin code page (cp1257, cp1250) first for Western European text,
# which such code pages decode to equally clean but wrong letters ("élčves"). windows-1252, the commonest
# legacy encoding (and what browsers read "latin-1" as), wins when nearly as clean, unless the other reading
# is clearly more like a language (real Baltic or Central European text).
_CHAOS_TOLERANCE = 0.03
_COHERENCE_MARGIN = 0.05


def _guess_legacy_encoding(data: bytes) -> str:
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        raise UnsupportedTypeError("The file is not text in any known encoding.")
    near_best = [match for match in matches if match.chaos <= best.chaos + _CHAOS_TOLERANCE]
    western = next((match for match in near_best if match.encoding == "cp1252"), None)
    if (
        western is not None
        and max(match.coherence for match in near_best) <= western.coherence + _COHERENCE_MARGIN
    ):
        return str(western)
    return str(best)


class _VisibleTextCollector(HTMLParser):
    """Collects the text a browser would show, with block elements on their own lines."""

    HIDDEN = frozenset(
        {"script", "style", "template", "noscript", "svg", "math", "iframe", "object", "canvas"}
    )
    PARAGRAPHS = frozenset(
        {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "blockquote", "pre", "hr",
         "section", "article", "header", "footer", "nav", "aside", "main", "figure", "form", "fieldset",
         "address", "details"}
    )  # fmt: skip
    LINES = frozenset(
        {"br", "div", "li", "tr", "dt", "dd", "caption", "figcaption", "summary", "option", "title", "legend"}
    )
    CELLS = frozenset({"td", "th"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden_depth = 0
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._break(tag)  # <br/>, <hr/>: self-closed, so nothing to hide or nest

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden_depth = max(0, self.hidden_depth - 1)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        self._break(tag)

    def handle_data(self, data: str) -> None:
        if self.hidden_depth:
            return
        if not self.pre_depth:
            data = _HTML_WHITESPACE.sub(" ", data)
            if data == " " and (not self.parts or self.parts[-1].endswith("\n")):
                return  # layout whitespace between blocks
        self.parts.append(data)

    def _break(self, tag: str) -> None:
        if tag in self.CELLS:
            if self.parts and not self.parts[-1].endswith((" ", "\n")):
                self.parts.append(" ")
            return
        newlines = 2 if tag in self.PARAGRAPHS else 1 if tag in self.LINES else 0
        if not newlines:
            return
        if self.parts and not self.parts[-1].strip("\n"):  # already at a break: widen it, never stack
            self.parts[-1] = "\n" * max(len(self.parts[-1]), newlines)
        else:
            self.parts.append("\n" * newlines)


def html_to_text(html: str) -> str:
    """Visible text of an HTML document: no scripts or styles, one line per block element."""
    collector = _VisibleTextCollector()
    collector.feed(html)
    collector.close()
    # Lines start where blocks do; the spaces HTML collapses around them are not text.
    return re.sub(r"[ \t]*\n[ \t]*", "\n", "".join(collector.parts))
