"""Markdown shared by the formats that have tables (PDF, DOCX, PPTX)."""


def markdown_table(rows: list[list[str | None]]) -> str:
    """Rows of cell texts (None: a merged cell) as a Markdown table, the first row its header."""
    width = max(map(len, rows))
    cells = [[" ".join((cell or "").split()).replace("|", "\\|") for cell in row] for row in rows]
    cells = [row + [""] * (width - len(row)) for row in cells]
    lines = [cells[0], ["---"] * width, *cells[1:]]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
