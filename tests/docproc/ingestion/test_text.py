"""Plain text in any encoding, Markdown kept as written, HTML reduced to its visible text."""

from pathlib import Path

import pytest

from docproc.ingestion import (
    ExtractedDocument,
    NoTextError,
    Page,
    TextTooLongError,
    TooManyPagesError,
    extract,
)

FRENCH = (
    "Le rapport annuel présente les résultats de l'année écoulée. Les élèves ont étudié la géographie, "
    "l'économie et la littérature française ; à la fin du trimestre, chacun a rédigé un mémoire déjà "
    "évalué par le comité. Où en sommes-nous ? Voilà la question à laquelle répond ce document."
)
LEGACY_TEXTS = {
    "latin-1 French": (FRENCH, "latin-1"),
    "cp1252 French": (FRENCH, "cp1252"),
    "latin-1 Spanish": (
        "El niño pequeño comió una manzana en el jardín. Después, su mamá le explicó por qué el cielo es "
        "azul y cómo funcionan las estaciones del año. ¿Quién sabe cuántas preguntas más hará mañana?",
        "latin-1",
    ),
    "cp1252 German": (
        "Die Größe der Äpfel überraschte die Bäuerin. Für das nächste Jahr plant sie, mehr Bäume zu "
        "pflanzen, weil die Nachfrage in München und Köln stark gestiegen ist. Außerdem möchte sie über "
        "neue Sorten nachdenken.",
        "cp1252",
    ),
    "cp1257 Lithuanian": (
        "Lietuvos Respublikos Seimas priėmė įstatymą dėl švietimo sistemos pertvarkos. Ministrė pabrėžė, "
        "kad mokytojų atlyginimai bus didinami, o mokyklų tinklas optimizuojamas atsižvelgiant į "
        "gyventojų skaičių.",
        "cp1257",
    ),
    "cp1251 Russian": (
        "Вчера в Москве прошло совещание, на котором обсуждались вопросы развития образования и науки. "
        "Министр подчеркнул, что финансирование школ будет увеличено в следующем году.",
        "cp1251",
    ),
}


def extract_bytes(tmp_path: Path, data: bytes, name: str = "upload.bin", **limits: int) -> ExtractedDocument:
    path = tmp_path / name
    path.write_bytes(data)
    return extract(path, **limits)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_unicode_encodings(tmp_path: Path, encoding: str) -> None:
    text = "Grüße aus Köln — 世界 🌍\nZweite Zeile"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # the BOM is what tells UTF-16 apart
    document = extract_bytes(tmp_path, data)
    assert document == ExtractedDocument("text/plain", [Page(1, text)])


@pytest.mark.parametrize(("text", "encoding"), LEGACY_TEXTS.values(), ids=LEGACY_TEXTS.keys())
def test_legacy_single_byte_encodings_are_detected(tmp_path: Path, text: str, encoding: str) -> None:
    assert extract_bytes(tmp_path, text.encode(encoding)).text == text


def test_plain_text_is_cleaned_but_keeps_its_layout(tmp_path: Path) -> None:
    data = b"Title\r\n\r\n\r\n\r\n    indented line   \r\nlast line\n"
    assert extract_bytes(tmp_path, data).text == "Title\n\n    indented line\nlast line"


def test_form_feeds_make_pages(tmp_path: Path) -> None:
    document = extract_bytes(tmp_path, b"first page\n\x0c\nsecond page\x0cthird\n")
    assert document.pages == [Page(1, "first page"), Page(2, "second page"), Page(3, "third")]


def test_a_long_text_is_cut_into_pages_at_paragraph_ends(tmp_path: Path) -> None:
    paragraphs = [f"Paragraph {n} says something.\nIt has two lines." for n in range(200)]
    document = extract_bytes(tmp_path, "\n\n".join(paragraphs).encode(), page_chars=500)
    assert len(document.pages) > 10
    assert [page.number for page in document.pages] == list(range(1, len(document.pages) + 1))
    assert all(len(page.text) <= 500 for page in document.pages)
    # No paragraph is split across pages, and nothing is lost.
    assert all(page.text.startswith("Paragraph") and page.text.endswith("lines.") for page in document.pages)
    assert document.text == "\n\n".join(paragraphs)


def test_pages_grow_rather_than_pass_max_pages(tmp_path: Path) -> None:
    lines = "\n".join(f"Line {n} of a long text without paragraphs." for n in range(2000))
    document = extract_bytes(tmp_path, lines.encode(), page_chars=500, max_pages=20)
    assert 10 <= len(document.pages) <= 20
    with pytest.raises(TooManyPagesError):
        extract_bytes(tmp_path, b"page\x0c" * 30, max_pages=20)


def test_markdown_keeps_its_text_and_syntax(tmp_path: Path) -> None:
    markdown = "# Plan\n\n- **Build** the [ingestion](https://example.com) layer\n- Test it\n\n```\ncode\n```"
    document = extract_bytes(tmp_path, markdown.encode(), "notes.txt")
    assert document.content_type == "text/markdown"
    assert document.pages == [Page(1, markdown, "markdown")]


HTML = """<!DOCTYPE html>
<html><head><title>Annual  report</title>
<style>body { color: red }</style>
<script>var secret = "not text"; if (a < b) { alert(1) }</script></head>
<body>
  <nav><a href="/">Home</a></nav>
  <h1>Results &amp; outlook</h1>
  <p>Revenue   grew
     <b>12&nbsp;%</b>.<br>Costs fell.</p>
  <ul><li>North</li><li>South</li></ul>
  <table><tr><td>Q1</td><td>10</td></tr><tr><td>Q2</td><td>12</td></tr></table>
  <pre>keep   this
  spacing</pre>
  <noscript>Enable JavaScript</noscript>
</body></html>"""


def test_html_visible_text_with_block_structure(tmp_path: Path) -> None:
    document = extract_bytes(tmp_path, HTML.encode(), "page.txt")
    assert document.content_type == "text/html"
    assert document.text == (
        "Annual report\n\nHome\n\nResults & outlook\n\nRevenue grew 12\u00a0%.\nCosts fell.\n\n"
        "North\nSouth\n\nQ1 10\nQ2 12\n\nkeep   this\nspacing"
    )


def test_html_in_a_legacy_encoding(tmp_path: Path) -> None:
    html = f"<html><head><meta charset='windows-1252'></head><body><p>{FRENCH}</p></body></html>"
    assert extract_bytes(tmp_path, html.encode("cp1252")).text == FRENCH


@pytest.mark.parametrize(
    "data", [b"   \n\n\t \n", b"<html><script>only()</script></html>"], ids=["whitespace", "script-only-html"]
)
def test_no_text(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(NoTextError) as raised:
        extract_bytes(tmp_path, data)
    assert raised.value.code == "no_text"


def test_text_over_max_chars(tmp_path: Path) -> None:
    data = b"word " * 10_000  # 50,000 characters
    with pytest.raises(TextTooLongError) as raised:
        extract_bytes(tmp_path, data, max_chars=20_000)
    assert raised.value.code == "text_too_long"
    with pytest.raises(TextTooLongError):  # refused from its size alone, before it is read
        extract_bytes(tmp_path, data, max_chars=1_000)
    pages = extract_bytes(tmp_path, data, max_chars=50_000).pages
    assert len(" ".join(page.text for page in pages)) == 49_999  # one line, cut into pages at spaces


def test_document_text_joins_non_blank_pages() -> None:
    document = ExtractedDocument("application/pdf", [Page(1, "one"), Page(2, ""), Page(3, "three")])
    assert document.text == "one\n\nthree"
