"""Tables of results: aligned plain text for a terminal (`format_table`), GitHub Markdown for
reports (`markdown_table`).

    >>> print(format_table(["class", "AP"], [["person", 0.5], ["car", 0.25]]))
    class      AP
    ------  -----
    person  0.500
    car     0.250

Numbers are right-aligned and text left-aligned unless `align` says otherwise; floats get three
decimals, so columns of scores line up.
"""

from __future__ import annotations

from collections.abc import Sequence

_GAP = "  "


def _cell(value, float_format: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return format(value, float_format)
    return str(value)


def _is_number(value) -> bool:
    # bool is an int in Python, but a yes/no reads better on the left.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_table(headers: Sequence[str], rows: Sequence[Sequence], align: str | None = None,
                 float_format: str = ".3f") -> str:
    """Format `rows` under `headers` as an aligned text table (no trailing spaces).

    - headers: K column titles
    - rows: each a sequence of K values (str, int, float, None -> "-")
    - align: one character per column, "l" (left) or "r" (right); default: right for columns
      whose values are all numbers, left otherwise
    - float_format: format spec for floats, ".3f" by default
    Returns the table as one string, header, a dashed rule, then one line per row.
    """
    headers = [str(h) for h in headers]
    width = len(headers)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"format_table: row {i} has {len(row)} cells, expected {width}")
    if align is None:
        align = "".join(
            "r" if rows and all(_is_number(row[c]) or row[c] is None for row in rows) else "l"
            for c in range(width))
    if len(align) != width or set(align) - {"l", "r"}:
        raise ValueError(f"format_table: align must be {width} characters of 'l'/'r', got {align!r}")
    cells = [[_cell(v, float_format) for v in row] for row in rows]
    widths = [max([len(headers[c])] + [len(row[c]) for row in cells]) for c in range(width)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if a == "r" else v.ljust(w) for v, w, a in zip(values, widths, align)]
        return _GAP.join(parts).rstrip()

    out = [line(headers), _GAP.join("-" * w for w in widths)]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _markdown_cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value).replace("|", "\\|")


def _numeric(rows: list[list], column: int) -> bool:
    values = [row[column] for row in rows if row[column] is not None]
    return bool(values) and all(_is_number(v) for v in values)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table; number columns right-aligned, floats with three decimals."""
    rule = ["---:" if _numeric(rows, c) else "---" for c in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(_markdown_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
