"""Content type from a file's bytes, never its name."""

import re
import zipfile
from pathlib import Path

from .errors import EmptyFileError, MalformedDocumentError, TruncatedDocumentError, UnsupportedTypeError

PDF = "application/pdf"
PLAIN_TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
EPUB = "application/epub+zip"
IMAGES = frozenset({PNG, JPEG, TIFF})
ARCHIVES = frozenset({DOCX, PPTX, EPUB})
ACCEPTED = "Upload a PDF, Word (DOCX), PowerPoint (PPTX), EPUB, PNG, JPEG, TIFF, HTML, Markdown or text file."

_IMAGE_SIGNATURES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
]
_ZIP_LOCAL_HEADER = b"PK\x03\x04"
# The end-of-central-directory record lies in the last 22 bytes plus a comment of up to 64 KiB.
_ZIP_END_WINDOW = 22 + (64 << 10)
# The part naming each OOXML format's main document.
_OOXML_PARTS = {"word/document.xml": DOCX, "ppt/presentation.xml": PPTX}

SNIFF_BYTES = 64 * 1024
# PDF readers accept the header anywhere in the first 1024 bytes.
PDF_HEADER_WINDOW = 1024

# (byte offset, magic bytes, what the file is) for formats people upload by mistake.
_BINARY_SIGNATURES: list[tuple[int, bytes, str]] = [
    (0, b"GIF87a", "GIF image"),
    (0, b"GIF89a", "GIF image"),
    (8, b"WEBP", "WebP image"),
    (4, b"ftypheic", "HEIC image"),
    (0, b"PK\x05\x06", "ZIP archive (empty)"),
    (0, b"\x1f\x8b", "GZIP archive"),
    (0, b"BZh", "BZIP2 archive"),
    (0, b"\xfd7zXZ\x00", "XZ archive"),
    (0, b"\x28\xb5\x2f\xfd", "Zstandard archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (0, b"Rar!\x1a\x07", "RAR archive"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Microsoft Office document (DOC/XLS/PPT)"),
    (0, b"{\\rtf", "RTF document"),
    (0, b"%!PS", "PostScript document"),
    (0, b"SQLite format 3\x00", "SQLite database"),
    (0, b"\x7fELF", "ELF executable"),
    (4, b"ftyp", "MP4/QuickTime media"),
    (0, b"ID3", "MP3 audio"),
    (0, b"OggS", "Ogg media"),
    (0, b"fLaC", "FLAC audio"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM media"),
]

# Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
BYTE_ORDER_MARKS: list[tuple[bytes, str]] = [
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
]

# Text with more than this share of control bytes (other than \t \n \f \r and ESC) is binary.
_MAX_CONTROL_BYTE_SHARE = 0.01
_CONTROL_BYTES = bytes(code for code in range(0x20) if code not in b"\t\n\f\r\x1b")

# The WHATWG MIME sniffing standard's HTML patterns: one of these tags after leading whitespace,
# followed by a space or ">".
_HTML_START = re.compile(
    r"\A\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*"
    r"<(?:!doctype\s+html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p)[\s>]",
    re.IGNORECASE | re.DOTALL,
)

# Markdown constructs; a text showing at least two different kinds is Markdown.
_MARKDOWN_SIGNS: dict[str, re.Pattern[str]] = {
    "heading": re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE),
    "underlined heading": re.compile(r"^[^\s#>|-].*\n(?:=+|-{2,})[ \t]*$", re.MULTILINE),
    "list": re.compile(r"^[ \t]{0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+\S", re.MULTILINE),
    "link": re.compile(r"!?\[[^\]\n]+\]\([^)\s]+(?:[ \t]+\"[^\"\n]*\")?\)"),
    "code fence": re.compile(r"^[ \t]{0,3}(?:```|~~~)", re.MULTILINE),
    "emphasis": re.compile(r"(\*\*|__)(?=\S)[^\n]+?(?<=\S)\1"),
    "block quote": re.compile(r"^[ \t]{0,3}>[ \t]?\S", re.MULTILINE),
    "table": re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*\|", re.MULTILINE),
}
_MIN_MARKDOWN_SIGNS = 2


def sniff_content_type(path: Path) -> str:
    """The content type of the file at `path`, judged from its bytes alone.

    Raises EmptyFileError for an empty file, UnsupportedTypeError (naming the kind when it is recognised)
    for anything not accepted, and MalformedDocumentError for a damaged ZIP archive (DOCX, PPTX and EPUB are
    ZIP archives).
    """
    with path.open("rb") as file:
        head = file.read(SNIFF_BYTES)
    if not head:
        raise EmptyFileError("The file is empty.")
    if b"%PDF-" in head[:PDF_HEADER_WINDOW]:
        return PDF
    for magic, content_type in _IMAGE_SIGNATURES:
        if head.startswith(magic):
            return content_type
    if head.startswith(_ZIP_LOCAL_HEADER):
        return _archive_type(path)
    for offset, magic, kind in _BINARY_SIGNATURES:
        if head.startswith(magic, offset):
            raise UnsupportedTypeError(f"Unsupported file type: {kind}. {ACCEPTED}")
    text = _decode_head(head)
    if _HTML_START.match(text):
        return HTML
    if sum(1 for sign in _MARKDOWN_SIGNS.values() if sign.search(text)) >= _MIN_MARKDOWN_SIGNS:
        return MARKDOWN
    return PLAIN_TEXT


def _archive_type(path: Path) -> str:
    """DOCX, PPTX or EPUB by the parts a ZIP archive lists (its central directory, not its data)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            # An EPUB's first entry, stored uncompressed, is "mimetype" holding its type.
            small_mimetype = "mimetype" in names and archive.getinfo("mimetype").file_size < 64
            if small_mimetype and archive.read("mimetype").strip() == EPUB.encode():
                return EPUB
    except zipfile.BadZipFile as error:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - _ZIP_END_WINDOW))
            if b"PK\x05\x06" not in file.read():
                raise TruncatedDocumentError(
                    "The file is a truncated ZIP archive (DOCX, PPTX and EPUB are ZIP archives): "
                    "its end is missing; the upload may be incomplete."
                ) from None
        raise MalformedDocumentError(
            f"The file is a damaged ZIP archive (DOCX, PPTX and EPUB are ZIP archives): {error}."
        ) from None
    for part, content_type in _OOXML_PARTS.items():
        if part in names:
            return content_type
    kind = "Excel workbook" if "xl/workbook.xml" in names else "ZIP archive"
    raise UnsupportedTypeError(f"Unsupported file type: {kind}. {ACCEPTED}")


def byte_order_mark(data: bytes) -> tuple[bytes, str] | None:
    """The Unicode byte-order mark `data` starts with, and its codec."""
    return next(((mark, codec) for mark, codec in BYTE_ORDER_MARKS if data.startswith(mark)), None)


def _decode_head(head: bytes) -> str:
    """The first bytes as text, good enough to look for markup; UnsupportedTypeError for binary data."""
    bom = byte_order_mark(head)
    if bom is not None:
        mark, codec = bom
        return head[len(mark) :].decode(codec, errors="ignore")  # the cut may split a character
    control_bytes = sum(head.count(byte) for byte in _CONTROL_BYTES)
    if control_bytes > _MAX_CONTROL_BYTE_SHARE * len(head):
        raise UnsupportedTypeError(f"Unsupported file type: binary data. {ACCEPTED}")
    # Every marker looked for is ASCII, which Latin-1 maps one to one, whatever the real encoding.
    return head.decode("latin-1")
