"""Plain-text tables for the terminal."""

from collections.abc import Collection, Sequence


def format_table(rows: Sequence[Sequence[str]], right: Collection[int] = ()) -> list[str]:
    """Lines of ``rows`` in aligned columns; the column indexes in ``right`` align right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
