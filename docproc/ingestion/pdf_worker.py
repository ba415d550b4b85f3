"""PDF text extraction as it runs inside a child process (see pdf.py for the side that starts and stops it).

pdfium reads every page; pypdf gives a second opinion on pages pdfium leaves empty, garbles or puts in visual
instead of reading order (right-to-left scripts), and reads whole documents pdfium cannot open. Children
talk to the parent with messages on a pipe:
    ("plan", page_count, [(start, stop), ...], max_form_draws)  the lead child only, first: who reads which
                                                pages, and the form draw limit (None: no forms to count)
    ("pages", start, [(text, source), ...])     a child's pages and how each was read (text_layer or ocr),
                                                its last message
    ("error", IngestionError)                   why a child stopped, its last message
"""

import ctypes
import logging
import os
import re
import resource
import select
import signal
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pdfplumber
import pypdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from .errors import (
    DecompressionBombError,
    EncryptedPdfError,
    FormDrawLimitError,
    IngestionError,
    MalformedPdfError,
    PasswordRequiredError,
    ResourceLimitError,
    TextTooLongError,
    TooManyPagesError,
    TruncatedPdfError,
    WrongPasswordError,
)
from .markdown import markdown_table
from .normalize import normalize_text
from .ocr import OCR_DPI, OcrMode, recognize

# A stream inflating past this size at a ratio above the next is a bomb even within the document's budget:
# text-bearing streams are far smaller, and big real images do not compress 100:1.
SUSPICIOUS_INFLATED_STREAM_BYTES = 32 << 20
MAX_INFLATE_RATIO = 100
# Below this many pages per process, starting another process costs more than it saves.
MIN_PAGES_PER_WORKER = 24
# Readers look for the end-of-file marker in the last 1024 bytes.
EOF_MARKER_WINDOW = 1024

# "stream" plus its end of line starts a stream's data ("endstream" ends one); a literal start keeps the
# search fast.
_STREAM_START = re.compile(rb"stream(?:\r\n|\n|\r)")
# A stream's dictionary is what lies between its "obj" keyword and "stream"; this far back is plenty.
_DICTIONARY_LOOKBACK = 2048
_IMAGE_DICTIONARY = re.compile(rb"/Subtype\s*/Image\b")
_INFLATE_INPUT_CHUNK = 64 << 10
_INFLATE_OUTPUT_CHUNK = 1 << 20
_RIGHT_TO_LEFT = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")
# Characters that mean a glyph had no usable Unicode mapping.
_GARBAGE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffd\ue000-\uf8ff]")
_MAX_GARBAGE_SHARE = 0.1
# A form XObject drawn by name in a content stream: "/Name Do" (a name may escape bytes as #xx).
_DRAW_OPERATOR = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s*Do(?![^\s/\[\]()<>{}%])")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
# A stream's dictionary runs from its "N G obj" header to "stream"; a form's may lie this far back.
_HEADER_SEARCH = 64 << 10
_OBJECT_NUMBERS_END = re.compile(rb"\d+\s+\d+\s+$")
# A dictionary that can be read without a parser: no strings, comments or name escapes that could hide or
# fake a key (hex strings hold hex digits only, so they are dropped before looking).
_OPAQUE_DICTIONARY_BYTES = re.compile(rb"[()%#]")
_HEX_STRING = re.compile(rb"<[0-9A-Fa-f\s]*>")
# /Subtype with a direct name value other than /Form (a reference could point at /Form).
_NOT_FORM_SUBTYPE = re.compile(rb"/Subtype\s*+/(?!Form(?![^\s/\[\]()<>{}%]))")

# pdfminer (under pdfplumber) warns about every odd font; a damaged file is not news in the service's log.
logging.getLogger("pdfminer").setLevel(logging.ERROR)
# Forms nested deeper than this are not searched for images (pdfium's own nesting limit is lower).
_MAX_FORM_DEPTH = 16
# Pages drawing this many thin horizontal and vertical lines each (at most this thick, in points) may hold
# a ruled table.
_MIN_RULES = 3
_RULE_THICKNESS = 2.0
# Letters and digits a ruled box needs to be looked at as a table.
_MIN_TABLE_CHARACTERS = 8
# Share of a table's cells that must hold words or numbers, else it is a figure's grid.
_MIN_FILLED_SHARE = 0.75

Send = Callable[[tuple[Any, ...]], None]
# A page's text and how it was obtained.
PageText = tuple[str, str]


def child_main(
    connection: Connection, memory_bytes: int, cpu_seconds: int, job: Callable[..., None], *args: Any
) -> None:
    """Entry point of every child: die with the caller, limit memory and CPU time, run `job`, turn any
    failure into an "error" message."""
    _die_with_caller(connection)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    try:
        job(connection.send, *args)
    except IngestionError as error:
        connection.send(("error", error))
    except MemoryError:
        connection.send(("error", out_of_memory_error(memory_bytes)))
    except Exception as error:  # whatever a parser trips over in a hostile file is a file problem
        connection.send(
            ("error", MalformedPdfError(f"The PDF could not be read ({type(error).__name__}: {error})."))
        )
    finally:
        connection.close()


def _die_with_caller(connection: Connection) -> None:
    """Kill this child as soon as the process that started it ends, however it ends (SIGKILL included).

    The child's parent is the fork server, not the caller, and the fork server outlives the caller while any
    child lives, so the parent-death signal (prctl PR_SET_PDEATHSIG) cannot tell. The pipe to the caller
    can: only the caller holds its reading end, and once that closes, polling the writing end reports an
    error. A thread waits for that; a parser busy in C code releases the GIL to it.
    """

    def watch() -> None:
        poller = select.poll()
        poller.register(connection.fileno(), 0)  # errors and hang-ups are always reported
        poller.poll()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-caller", daemon=True).start()


def out_of_memory_error(memory_bytes: int) -> ResourceLimitError:
    return ResourceLimitError(
        f"Reading the file needed more than the {memory_bytes >> 20} MiB of memory allowed; "
        "the file may be a decompression bomb."
    )


def lead_job(
    send: Send,
    path: Path,
    password: str | None,
    max_pages: int,
    max_chars: int,
    workers: int,
    max_inflated_bytes: int,
    max_form_draws: int | None,
    ocr: OcrMode,
    max_pixels: int,
) -> None:
    """Check the file, open it, plan who reads which pages, and read the first share."""
    if not check_structure(path.read_bytes(), max_inflated_bytes):
        max_form_draws = None  # no form XObjects: nothing to count
    try:
        document = open_with_pdfium(path, password)
    except MalformedPdfError as pdfium_error:
        texts = read_with_pypdf(path, password, max_pages, max_chars, pdfium_error)
        send(("plan", len(texts), [(0, len(texts))], max_form_draws))
        send(("pages", 0, texts))
        return
    page_count = len(document)
    check_page_count(page_count, max_pages)
    ranges = split_pages(page_count, workers)
    send(("plan", page_count, ranges, max_form_draws))
    start, stop = ranges[0]
    pages = read_pages(document, path, password, start, stop, max_chars, max_form_draws, ocr, max_pixels)
    send(("pages", start, pages))


def range_job(
    send: Send,
    path: Path,
    password: str | None,
    start: int,
    stop: int,
    max_chars: int,
    max_form_draws: int | None,
    ocr: OcrMode,
    max_pixels: int,
) -> None:
    """Read pages [start, stop) of a document the lead child has already checked."""
    document = open_with_pdfium(path, password)
    pages = read_pages(document, path, password, start, stop, max_chars, max_form_draws, ocr, max_pixels)
    send(("pages", start, pages))


def split_pages(page_count: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous page ranges, one per process, none shorter than MIN_PAGES_PER_WORKER unless alone."""
    count = max(1, min(workers, page_count // MIN_PAGES_PER_WORKER))
    bounds = [page_count * index // count for index in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def check_structure(data: bytes, max_inflated_bytes: int) -> bool:
    """Refuse a cut-off file, streams that inflate to bombs, and streams that together inflate past
    `max_inflated_bytes`, before any parser sees them. True when some stream may be a form XObject: without
    one, no page draws forms and counting its form draws is wasted work."""
    if b"%%EOF" not in data[-EOF_MARKER_WINDOW:]:
        raise TruncatedPdfError(
            "The PDF is truncated (it has no end-of-file marker); the upload may be incomplete."
        )
    view = memoryview(data)
    # A byte-level look at every stream that starts like zlib data; a parser is no use here, since the point
    # is to look before one inflates anything. Streams this cannot inflate (other filters, encryption) pass,
    # and so do images: text extraction never decodes their pixels, and inflating them would cost more than
    # the extraction itself. A bomb slipping through still meets the memory limit.
    total_inflated = 0
    may_hold_forms = False
    seen_streams = 0
    for match in _STREAM_START.finditer(data):
        header = data[max(0, match.start() - _DICTIONARY_LOOKBACK) : match.start()]
        if header.endswith(b"end"):
            continue
        seen_streams += 1
        may_hold_forms = may_hold_forms or _may_be_form(data, match.start())
        if _IMAGE_DICTIONARY.search(header[header.rfind(b"obj") :]):
            continue
        inflated, consumed = _inflated_size(view[match.end() :], max_inflated_bytes - total_inflated)
        if inflated > SUSPICIOUS_INFLATED_STREAM_BYTES and inflated > MAX_INFLATE_RATIO * consumed:
            raise DecompressionBombError(
                f"The PDF holds a stream of {consumed:,} bytes that inflates to over {inflated:,} bytes "
                "(a decompression bomb); it was not processed."
            )
        total_inflated += inflated
        if total_inflated > max_inflated_bytes:
            raise DecompressionBombError(
                f"The PDF's streams inflate to over {max_inflated_bytes >> 20:,} MiB in all, the most "
                "accepted (a decompression bomb, or a document too big to read); it was not processed."
            )
    # A "stream" keyword not followed by an end of line starts a stream this scan did not look at.
    unseen_streams = data.count(b"stream") - data.count(b"endstream") > seen_streams
    return may_hold_forms or unseen_streams


def _may_be_form(data: bytes, stream_start: int) -> bool:
    """Whether the stream starting at `stream_start` may be a form XObject: False only when its whole
    dictionary reads plainly and either has no /Subtype or names another one directly (pdfium draws a stream
    as a form only when its /Subtype is /Form)."""
    header_end = data.rfind(b"obj", max(0, stream_start - _HEADER_SEARCH), stream_start)
    if header_end < 0 or not _OBJECT_NUMBERS_END.search(data, max(0, header_end - 48), header_end):
        return True
    dictionary = _HEX_STRING.sub(b" ", data[header_end + 3 : stream_start]).strip()
    if not (dictionary.startswith(b"<<") and dictionary.endswith(b">>")):
        return True
    brackets = dictionary.replace(b"<<", b"").replace(b">>", b"")
    if _OPAQUE_DICTIONARY_BYTES.search(dictionary) or b"<" in brackets or b">" in brackets:
        return True
    if dictionary.count(b"<<") != dictionary.count(b">>"):
        return True  # "obj" inside the dictionary: its start is further back
    subtypes = dictionary.count(b"/Subtype")
    return subtypes > 1 or (subtypes == 1 and not _NOT_FORM_SUBTYPE.search(dictionary))


def _inflated_size(data: memoryview, limit: int) -> tuple[int, int]:
    """(bytes inflated, compressed bytes consumed), inflating zlib data at the start of `data` in chunks and
    stopping just past `limit`. (0, 0) when it is not zlib data."""
    inflater = zlib.decompressobj()
    inflated = fed = 0
    pending = data[:0]
    try:
        while not inflater.eof and inflated <= limit:
            if not pending:
                if fed >= len(data):
                    break
                pending = data[fed : fed + _INFLATE_INPUT_CHUNK]
                fed += len(pending)
            inflated += len(inflater.decompress(pending, _INFLATE_OUTPUT_CHUNK))
            pending = inflater.unconsumed_tail
    except zlib.error:
        pass  # not zlib, or damaged: either way nothing more inflates
    return inflated, fed - len(pending) - len(inflater.unused_data)


def check_page_count(page_count: int, max_pages: int) -> None:
    if page_count > max_pages:
        raise TooManyPagesError(f"The PDF has {page_count:,} pages; at most {max_pages:,} are accepted.")


def password_error(password: str | None) -> EncryptedPdfError:
    if password is None:
        return PasswordRequiredError("The PDF is encrypted: give its password to open it.")
    return WrongPasswordError("The PDF is encrypted and the password given is wrong.")


def open_with_pdfium(path: Path, password: str | None) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(path, password=password)
    except pdfium.PdfiumError as error:
        code = getattr(error, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise password_error(password) from None
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise EncryptedPdfError(
                "The PDF is encrypted with a security scheme that is not supported."
            ) from None
        raise MalformedPdfError(f"The PDF is damaged and could not be read ({error}).") from None


def read_pages(
    document: pdfium.PdfDocument,
    path: Path,
    password: str | None,
    start: int,
    stop: int,
    max_chars: int,
    max_form_draws: int | None,
    ocr: OcrMode,
    max_pixels: int,
) -> list[PageText]:
    """Normalised text of pages [start, stop), pdfium first, pypdf where pdfium's text is doubtful, OCR of
    the rendered page where `ocr` says. Form draws are counted unless `max_form_draws` is None."""
    second_opinion = _PypdfPages(path, password)
    form_draws = None if max_form_draws is None else _FormDraws(second_opinion, max_form_draws)
    tables = _Tables(path, password)

    def page_texts() -> Iterator[PageText]:
        for index in range(start, stop):
            if form_draws is not None:
                form_draws.check(index)  # pdfium parses every drawn form as it loads the page
            page = document[index]
            text_page = page.get_textpage()
            try:
                text = text_page.get_text_range()
                if ocr is OcrMode.force or (ocr is OcrMode.auto and not text.strip() and _has_image(page)):
                    yield recognize(render(page, max_pixels)), "ocr"
                    continue
                ruled = _has_ruled_table(page, text_page)
                with_tables = tables.text(index, page, text_page) if ruled else None
                if with_tables is not None:
                    yield normalize_text(with_tables, from_pdf=True), "text_layer"
                    continue
            finally:
                text_page.close()
                page.close()
            if _is_doubtful(text):
                text = _better_of(text, second_opinion.text(index))
            yield normalize_text(text, from_pdf=True), "text_layer"

    return _within_limit(page_texts(), max_chars)


def _has_ruled_table(page: pdfium.PdfPage, text_page: pdfium.PdfTextPage) -> bool:
    """Whether the page draws rules as a table does, around words: thin horizontal lines of one extent, at
    least _MIN_RULES of them, as many thin vertical ones of one extent, and at least _MIN_TABLE_CHARACTERS
    letters or digits in the box they span (pdfplumber's table finder is slow: only such pages are given to
    it; fraction bars, underlines and figures' grids do not pass)."""
    horizontal: Counter[tuple[int, int]] = Counter()
    vertical: Counter[tuple[int, int]] = Counter()
    # pdfium's C calls directly: pypdfium2's object wrappers cost more than reading the page's text. Rules
    # are looked for at the page's top level (tables inside form XObjects are left as text).
    bounds = [ctypes.c_float() for _ in range(4)]
    for index in range(pdfium_c.FPDFPage_CountObjects(page.raw)):
        item = pdfium_c.FPDFPage_GetObject(page.raw, index)
        if pdfium_c.FPDFPageObj_GetType(item) != pdfium_c.FPDF_PAGEOBJ_PATH:
            continue
        pdfium_c.FPDFPageObj_GetBounds(item, *map(ctypes.byref, bounds))
        left, bottom, right, top = (bound.value for bound in bounds)
        if top - bottom <= _RULE_THICKNESS < right - left:
            horizontal[round(left), round(right)] += 1
        elif right - left <= _RULE_THICKNESS < top - bottom:
            vertical[round(bottom), round(top)] += 1
    if not all(counts and max(counts.values()) >= _MIN_RULES for counts in (horizontal, vertical)):
        return False
    ((left, right), _), ((bottom, top), _) = horizontal.most_common(1)[0], vertical.most_common(1)[0]
    inside = text_page.get_text_bounded(left, bottom, right, top)
    return sum(char.isalnum() for char in inside) >= _MIN_TABLE_CHARACTERS


class _Tables:
    """A page's text with its ruled tables as Markdown tables: pdfplumber finds the tables' cells, pdfium
    reads the text in and around them. None when the page has no table, or pdfplumber cannot read it."""

    def __init__(self, path: Path, password: str | None) -> None:
        self.path = path
        self.password = password
        self.document: pdfplumber.PDF | None = None

    def text(self, index: int, page: pdfium.PdfPage, text_page: pdfium.PdfTextPage) -> str | None:
        try:
            if self.document is None:
                self.document = pdfplumber.open(self.path, password=self.password or "")
            found = self.document.pages[index].find_tables()
        except Exception:
            return None
        height = page.get_height()

        def read(left: float, top: float, right: float, bottom: float) -> str:
            # pdfplumber measures from the top of the page, pdfium from the bottom.
            return text_page.get_text_bounded(left, height - bottom, right, height - top).strip()

        tables = []
        for table in found:
            rows = [[read(*cell) if cell else "" for cell in row.cells] for row in table.rows]
            if _is_data_table(rows):
                tables.append((table.bbox, rows))
        if not tables:
            return None
        parts: list[str] = []
        width, above = page.get_width(), 0.0
        for (left, top, right, bottom), rows in sorted(tables, key=lambda table: table[0][1]):
            parts.append(read(0, above, width, max(above, top)))
            parts.append(markdown_table(rows))
            beside = [read(0, max(above, top), left, bottom), read(right, max(above, top), width, bottom)]
            parts.append("\n".join(beside))
            above = max(above, bottom)
        parts.append(read(0, above, width, height))
        return "\n\n".join(part.strip() for part in parts if part.strip())


def _is_data_table(rows: list[list[str]]) -> bool:
    """Rows and columns of words and numbers; not a box around a paragraph, nor a figure's grid (mostly empty
    cells, or marks and stray labels)."""
    cells = [cell for row in rows for cell in row]
    filled = sum(1 for cell in cells if any(char.isalnum() for char in cell))
    return len(rows) >= 2 and max(map(len, rows)) >= 2 and filled >= _MIN_FILLED_SHARE * len(cells)


def _has_image(page: pdfium.PdfPage) -> bool:
    """Whether the page draws an image, in forms too: a page without text or images is blank, not a scan."""
    images = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=_MAX_FORM_DEPTH)
    return next(images, None) is not None


def render(page: pdfium.PdfPage, max_pixels: int) -> Image.Image:
    """The page as an image at OCR_DPI, or smaller if that would pass `max_pixels` (a page can be huge)."""
    width, height = page.get_size()  # points: 1/72 inch
    scale = min(OCR_DPI / 72, (max_pixels / max(1.0, width * height)) ** 0.5)
    return page.render(scale=scale).to_pil()


def _within_limit(texts: Iterable[PageText], max_chars: int) -> list[PageText]:
    """All of `texts`, stopping as soon as together they pass max_chars."""
    kept: list[PageText] = []
    total_chars = 0
    for text in texts:
        total_chars += len(text[0])
        if total_chars > max_chars:
            raise TextTooLongError.over(max_chars)
        kept.append(text)
    return kept


def _garbage_share(text: str) -> float:
    return len(_GARBAGE.findall(text)) / max(1, len(text))


def _is_doubtful(text: str) -> bool:
    """Empty, garbled, or in a right-to-left script (pdfium gives those in visual order, reversed)."""
    return (
        not text.strip()
        or _RIGHT_TO_LEFT.search(text) is not None
        or _garbage_share(text) > _MAX_GARBAGE_SHARE
    )


def _better_of(pdfium_text: str, pypdf_text: str) -> str:
    if not pypdf_text.strip():
        return pdfium_text
    if not pdfium_text.strip() or _RIGHT_TO_LEFT.search(pypdf_text):
        return pypdf_text
    return pypdf_text if _garbage_share(pypdf_text) < _garbage_share(pdfium_text) else pdfium_text


class _PypdfPages:
    """pypdf's text for single pages, opening the document on first use. "" when pypdf cannot read a page:
    it is only a second opinion."""

    def __init__(self, path: Path, password: str | None) -> None:
        self.path = path
        self.password = password
        self.reader: pypdf.PdfReader | None = None

    def page(self, index: int) -> pypdf.PageObject:
        if self.reader is None:
            self.reader = _open_with_pypdf(self.path, self.password)
        return self.reader.pages[index]

    def text(self, index: int) -> str:
        try:
            return self.page(index).extract_text()
        except Exception:
            return ""


class _FormDraws:
    """Refuses a page that draws form XObjects more than `limit` times, nested draws included, before
    pdfium loads it: pdfium parses a form afresh at every draw and keeps the result, so a form that draws
    another ten times, nine levels deep, is 10^9 parses from a 3 KB file. Counts from the content streams'
    bytes (pypdf finds the objects); a page pypdf cannot read passes, and meets the memory limit in pdfium.
    """

    def __init__(self, pages: _PypdfPages, limit: int) -> None:
        self.pages = pages
        self.limit = limit
        self.nested: dict[tuple[int, int], int] = {}  # (form, resources) ids: draws inside, expanded

    def check(self, index: int) -> None:
        try:
            page = self.pages.page(index)
            resources = page.get("/Resources")
            if not _has_forms(resources):
                return
            draws = self._draws(_content_bytes(page.get("/Contents")), resources, set())
        except IngestionError:
            raise
        except Exception:
            return  # pypdf cannot read it: pdfium's memory and time limits still hold
        if draws > self.limit:
            raise FormDrawLimitError(
                f"Page {index + 1} draws form XObjects (drawings nested in drawings) over {self.limit:,} "
                "times, the most accepted; the file is pathological or hostile and was not processed."
            )

    def _draws(self, content: bytes, resources: Any, open_forms: set[int]) -> int:
        """Form draws `content` makes, nested ones included, stopping once past the limit."""
        xobjects = _resolved(resources).get("/XObject") if resources is not None else None
        if xobjects is None:
            return 0
        xobjects = _resolved(xobjects)
        total = 0
        for name, times in Counter(_DRAW_OPERATOR.findall(content)).items():
            reference = xobjects.get(_NAME_ESCAPE.sub(_unescape, b"/" + name).decode("latin-1"))
            form = _resolved(reference)
            if not _is_form(form) or id(form) in open_forms:  # pdfium skips a form drawing itself
                continue
            total += times * (1 + self._nested(form, resources, open_forms))
            if total > self.limit:
                break
        return total

    def _nested(self, form: Any, inherited: Any, open_forms: set[int]) -> int:
        resources = form.get("/Resources", inherited)  # a form without resources uses its drawer's
        key = (id(form), id(_resolved(resources)))
        if key not in self.nested:
            open_forms.add(id(form))
            self.nested[key] = self._draws(form.get_data(), resources, open_forms)
            open_forms.discard(id(form))
        return self.nested[key]


def _resolved(item: Any) -> Any:
    return item.get_object() if item is not None else None


def _is_form(item: Any) -> bool:
    return isinstance(item, pypdf.generic.StreamObject) and item.get("/Subtype") == "/Form"


def _has_forms(resources: Any) -> bool:
    xobjects = _resolved(_resolved(resources).get("/XObject")) if resources is not None else None
    return xobjects is not None and any(_is_form(_resolved(item)) for item in xobjects.values())


def _content_bytes(contents: Any) -> bytes:
    contents = _resolved(contents)
    if contents is None:
        return b""
    if isinstance(contents, pypdf.generic.ArrayObject):
        return b"\n".join(_resolved(part).get_data() for part in contents)
    return contents.get_data()


def _unescape(match: re.Match[bytes]) -> bytes:
    return bytes([int(match[1], 16)])


def _open_with_pypdf(path: Path, password: str | None) -> pypdf.PdfReader:
    reader = pypdf.PdfReader(path)
    if reader.is_encrypted and reader.decrypt(password or "") == pypdf.PasswordType.NOT_DECRYPTED:
        raise password_error(password)
    return reader


def read_with_pypdf(
    path: Path, password: str | None, max_pages: int, max_chars: int, pdfium_error: MalformedPdfError
) -> list[PageText]:
    """Whole-document fallback for files pdfium cannot open; pdfium's complaint if pypdf cannot either."""
    try:
        reader = _open_with_pypdf(path, password)
        check_page_count(len(reader.pages), max_pages)
        return _within_limit(
            ((normalize_text(page.extract_text(), from_pdf=True), "text_layer") for page in reader.pages),
            max_chars,
        )
    except IngestionError:
        raise
    except pypdf.errors.LimitReachedError:
        raise DecompressionBombError(
            "The PDF holds a stream that inflates past pypdf's safety limit."
        ) from None
    except Exception:
        raise pdfium_error from None
