"""Plain text, Markdown and HTML: decoding and visible text."""

import re
from html.parser import HTMLParser
from pathlib import Path

import charset_normalizer

from .errors import NoTextError, TextTooLongError, UnsupportedTypeError
from .normalize import normalize_text
from .sniff import HTML, byte_order_mark

# No encoding takes more than 4 bytes per character, so a larger file holds more than max_chars characters.
_MAX_BYTES_PER_CHAR = 4


def read_text_document(path: Path, content_type: str, *, max_chars: int) -> str:
    """The normalised text of a plain-text, Markdown or HTML file. Markdown keeps its syntax."""
    if path.stat().st_size > _MAX_BYTES_PER_CHAR * max_chars + _MAX_BYTES_PER_CHAR:
        raise TextTooLongError.over(max_chars)
    text = decode_text(path.read_bytes())
    if content_type == HTML:
        text = html_to_text(text)
    text = normalize_text(text, from_pdf=False)
    if len(text) > max_chars:
        raise TextTooLongError.over(max_chars)
    if not text:
        raise NoTextError("The document contains no text.")
    return text


def decode_text(data: bytes) -> str:
    """Bytes to text: a byte-order mark wins, then UTF-8, then charset-normalizer's best guess."""
    bom = byte_order_mark(data)
    if bom is not None:
        mark, codec = bom
        return data[len(mark) :].decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise UnsupportedTypeError("The file is not text in any known encoding.")
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
        self.parts.append(data if self.pre_depth else re.sub(r"\s+", " ", data))

    def _break(self, tag: str) -> None:
        if tag in self.PARAGRAPHS:
            self.parts.append("\n\n")
        elif tag in self.LINES:
            self.parts.append("\n")
        elif tag in self.CELLS:
            self.parts.append(" ")


def html_to_text(html: str) -> str:
    """Visible text of an HTML document: no scripts or styles, one line per block element."""
    collector = _VisibleTextCollector()
    collector.feed(html)
    collector.close()
    # Lines start where blocks do; the spaces HTML collapses around them are not text.
    return re.sub(r"[ \t]*\n[ \t]*", "\n", "".join(collector.parts))
