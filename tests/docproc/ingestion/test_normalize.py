"""Text clean-up: what changes for PDF text, and what authored text keeps."""

import pytest

from docproc.ingestion.normalize import normalize_text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("exam-\nple text", "example text"),  # syllable break at a line end
        ("exam\ufffeple", "example"),  # pdfium's mark for a hyphen it removed at a line break
        ("Schwarz\ufffeWeiß", "Schwarz-Weiß"),  # ... before a capital, a real hyphen
        ("Nord-\nSüd", "Nord-\nSüd"),
        ("soft\u00adhyphen", "softhyphen"),
        ("well-known words", "well-known words"),
        ("1990-\n1995", "1990-\n1995"),
        ("  spread    out\t words  \r\n\r\n\r\n\r\nnext  ", "spread out words\n\nnext"),
        ("NUL\x00s and\x04 controls\x0cgo", "NULs and controls go"),
        ("e\u0301t\u00e9 \ufb01nal \ufb02oor", "\u00e9t\u00e9 final floor"),  # NFC, ligatures spelled out
        ("symbol \uf8eb glyph", "symbol glyph"),  # private use: a symbol font without Unicode mapping
    ],
)
def test_pdf_text(raw: str, clean: str) -> None:
    assert normalize_text(raw, from_pdf=True) == clean


def test_authored_text_keeps_indentation_and_hyphens() -> None:
    raw = "def f():\r\n    return well-\nknown  \n\n\n\n\x00end"
    assert normalize_text(raw, from_pdf=False) == "def f():\n    return well-\nknown\n\nend"
