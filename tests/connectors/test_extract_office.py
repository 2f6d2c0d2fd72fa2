"""Office files as people and their programs leave them: spreadsheets whose declared range is
wrong, password-protected and empty files, owner files, macro-enabled packages, numbered lists,
notes and comments."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable

import pytest

from inlet.connectors.extract import document_title, extract_text, kind_of
from inlet.errors import ItemError


def _saved(document) -> bytes:
    """The bytes of a python-docx, python-pptx or openpyxl document."""
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _changed(
    package: bytes, changes: dict[str, Callable[[bytes], bytes]], added: dict[str, bytes] | None = None
) -> bytes:
    """`package` with each part `changes` names rewritten by its function, and the parts `added`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as old, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as new:
        for name in old.namelist():
            part = old.read(name)
            new.writestr(name, changes[name](part) if name in changes else part)
        for name, part in (added or {}).items():
            new.writestr(name, part)
    return out.getvalue()


def _orders() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Orders"
    sheet.append(["order", "customer", "amount"])
    for n in range(1, 40):
        sheet.append([f"PO-{n:04d}", f"customer{n:02d}", n * 10])
    sheet.append(["PO-LAST", "lastcustomer_albatross", 999, "late"])
    return _saved(book)


@pytest.mark.parametrize("declared", ["A1", "A1:C10", "B2:B3"])
def test_an_xlsx_is_read_whole_whatever_range_its_sheet_declares(declared: str) -> None:
    """`<dimension>` is a hint exporters get wrong (`A1` over every row, a stale range): every row
    and every cell the sheet holds is text, as a spreadsheet app shows it."""
    sheet = "xl/worksheets/sheet1.xml"
    understated = _changed(
        _orders(),
        {sheet: lambda xml: re.sub(rb'<dimension ref="[^"]*"\s*/>', f'<dimension ref="{declared}"/>'.encode(), xml)},
    )
    assert f'<dimension ref="{declared}"/>'.encode() in zipfile.ZipFile(io.BytesIO(understated)).read(sheet)
    text = extract_text(understated, "orders-export.xlsx")
    lines = text.split("\n")
    assert lines[:3] == ["## Orders", "", "order | customer | amount"]
    assert len(lines) == 3 + 40
    assert lines[-1] == "PO-LAST | lastcustomer_albatross | 999 | late"
    assert text == extract_text(_orders(), "orders.xlsx")
