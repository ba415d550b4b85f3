"""Text clean-up shared by every format: line ends, control characters, ligatures, whitespace."""

import re
import unicodedata

# pdfium marks a hyphen it dropped at a line break with U+FFFE; U+00AD is a soft hyphen.
_BREAK_HYPHENS = "\ufffe\u00ad"
# A word split across lines: "exam-\nple", or pdfium's "exam\ufffeple". Group 1 is the next letter.
_BROKEN_WORD = re.compile(r"(?<=[^\W\d_])(?:-\n|[\ufffe\u00ad]\n?)(?=([^\W\d_]))")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_SPACE_BEFORE_NEWLINE = re.compile(r"[^\S\n]+\n")
_SPACE_AFTER_NEWLINE = re.compile(r"\n[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _control_character_table() -> dict[int, str]:
    table: dict[int, str] = {code: " " for code in range(0x20) if chr(code) not in "\t\n"}
    table |= {0x00: "", 0x7F: ""} | {code: "" for code in range(0x80, 0xA0)}
    table |= {ord(mark): "" for mark in _BREAK_HYPHENS}
    table |= {0x2028: "\n", 0x2029: "\n\n"}
    # Typographic ligatures (U+FB00..FB06: ff, fi, fl, ffi, ffl, st) become their letters.
    table |= {code: unicodedata.normalize("NFKC", chr(code)) for code in range(0xFB00, 0xFB07)}
    return table


_CONTROL_CHARACTERS = _control_character_table()
_PRIVATE_USE = {code: "" for code in range(0xE000, 0xF900)}


def _join_broken_word(match: re.Match[str]) -> str:
    if match.group(1).islower():
        return ""  # a syllable break: "exam-\nple" -> "example"
    mark = match.group(0)
    if mark.startswith("-"):
        return mark  # "Schwarz-\nWeiß" keeps its hyphen
    return ("-" if mark.startswith("\ufffe") else "") + mark[1:]


def normalize_text(text: str, *, from_pdf: bool) -> str:
    """Clean extracted text.

    Always: one newline style, no control characters (NUL dropped), ligatures spelled out, NFC, no trailing
    spaces, at most one blank line in a row. `from_pdf` also rejoins words hyphenated at line ends, collapses
    runs of spaces (positioned glyphs, not authored indentation) and drops private-use glyphs (symbol fonts
    without a Unicode mapping).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x85", "\n")
    if from_pdf:
        text = _BROKEN_WORD.sub(_join_broken_word, text)
        text = text.translate(_PRIVATE_USE)
    text = unicodedata.normalize("NFC", text.translate(_CONTROL_CHARACTERS))
    if from_pdf:
        text = _SPACE_AFTER_NEWLINE.sub("\n", _HORIZONTAL_SPACE.sub(" ", text))
    text = _SPACE_BEFORE_NEWLINE.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()
