"""Ruled tables in born-digital PDFs reach the model as Markdown tables, in place among the page's text."""

from pathlib import Path

from docproc.ingestion import extract

from .pdfs import write_pdf, zlib_stream

ROWS = [["Year", "Members", "Revenue"], ["2024", "310", "388,000"], ["2025", "402", "412,000"]]
# The grid: columns and rows in points (PDF space: y grows upwards).
COLUMNS = [72, 192, 312, 432]
ROW_TOPS = [600, 580, 560, 540]


def table_page() -> bytes:
    """A heading, a 3 x 3 table ruled on every edge, and a closing line."""
    ops = [b"BT /F1 14 Tf 72 680 Td (Members and revenue) Tj ET\n"]
    for x in COLUMNS:
        ops.append(b"%d %d m %d %d l S\n" % (x, ROW_TOPS[0], x, ROW_TOPS[-1]))
    for y in ROW_TOPS:
        ops.append(b"%d %d m %d %d l S\n" % (COLUMNS[0], y, COLUMNS[-1], y))
    for row, top in zip(ROWS, ROW_TOPS, strict=False):
        for cell, left in zip(row, COLUMNS, strict=False):
            ops.append(b"BT /F1 10 Tf %d %d Td (%s) Tj ET\n" % (left + 6, top - 14, cell.encode()))
    ops.append(b"BT /F1 10 Tf 72 500 Td (Both years were audited.) Tj ET\n")
    return b"".join(ops)


def test_ruled_table_becomes_a_markdown_table(tmp_path: Path) -> None:
    page = extract(write_pdf(tmp_path / "table.pdf", zlib_stream(table_page()))).pages[0]
    assert page.source == "text_layer"
    assert page.text == (
        "Members and revenue\n\n"
        "| Year | Members | Revenue |\n| --- | --- | --- |\n"
        "| 2024 | 310 | 388,000 |\n| 2025 | 402 | 412,000 |\n\n"
        "Both years were audited."
    )
