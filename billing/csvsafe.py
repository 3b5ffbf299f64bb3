"""CSV cells a spreadsheet will not run: the one guard used by every staff CSV download and export.

A cell that starts with =, +, - or @ (or a tab or carriage return) runs as a formula when a spreadsheet opens the
file (OWASP "CSV injection"); names and addresses are typed by people, and import problems quote the uploaded file.
Such a cell gets a leading apostrophe. Exports therefore write amounts unsigned, with a column that says which way
the money went, so no number needs the guard.
"""

import csv
import io

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """A value for one CSV cell, with a leading quote when a spreadsheet would otherwise run it as a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in _FORMULA_STARTS else text


def csv_text(rows) -> str:
    """Rows (iterables of values) as CSV text, every cell guarded."""
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return out.getvalue()
