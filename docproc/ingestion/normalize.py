"""Text clean-up shared by every format: line ends, control characters, ligatures, whitespace."""

import re
import unicodedata

# A word split across lines: "exam-\nple", or pdfium's "exam\ufffeple" (U+FFFE marks a hyphen pdfium dropped
# at a line break; U+00AD is a soft hyphen). Group 1 is the next letter; the one before is checked on a
# match, which keeps the pattern's start literal and the scan fast.
_BROKEN_WORD = re.compile(r"(?:-\n|[\ufffe\u00ad]\n?)(?=([^\W\d_]))")
_LINE_BREAKS = [("\r\n", "\n"), ("\r", "\n"), ("\x85", "\n"), ("\u2028", "\n"), ("\u2029", "\n\n")]
_BLANK_LINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x01-\x08\x0b-\x1f]")  # tab and newline stay
_INVISIBLE = re.compile(r"[\x00\x7f-\x9f\ufffe\u00ad]")  # NUL, DEL, C1 controls, stray hyphen marks
_PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]")
# Typographic ligatures (U+FB00..FB06: ff, fi, fl, ffi, ffl, st) are spelled out.
_LIGATURE = re.compile(r"[\ufb00-\ufb06]")


def _join_broken_word(match: re.Match[str]) -> str:
    mark = match.group(0)
    if not match.string[match.start() - 1 : match.start()].isalpha():
        return mark  # not inside a word; a stray mark is dropped later
    if match.group(1).islower():
        return ""  # a syllable break: "exam-\nple" -> "example"
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
    for line_break, replacement in _LINE_BREAKS:
        text = text.replace(line_break, replacement)
    if from_pdf:
        text = _BROKEN_WORD.sub(_join_broken_word, text)
        text = _PRIVATE_USE.sub("", text)
    text = _INVISIBLE.sub("", _CONTROL.sub(" ", text))
    text = _LIGATURE.sub(lambda match: unicodedata.normalize("NFKC", match.group(0)), text)
    text = unicodedata.normalize("NFC", text)
    if from_pdf:  # runs of spaces collapse, lines lose their indentation
        text = "\n".join(" ".join(line.split()) for line in text.split("\n"))
    else:
        text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()
