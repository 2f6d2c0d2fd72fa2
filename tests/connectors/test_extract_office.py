"""Office files as people and their programs leave them: spreadsheets whose declared range is
wrong, password-protected and empty files, owner files, macro-enabled packages, numbered lists,
notes and comments."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from inlet.connectors.extract import document_title, extract_text, kind_of
from inlet.errors import EncryptedError, ItemError, NotADocumentError


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


# `budget.xlsx` saved with a password ("secret"), as Office's "Encrypt with Password" writes it: an
# OLE2 compound file holding the encrypted package (written with msoffcrypto-tool 6.1)
_PASSWORD_XLSX = Path(__file__).parent.parent / "fixtures" / "office" / "password-budget.xlsx"


@pytest.mark.parametrize("name", ["budget.xlsx", "salaries.docx", "deck.pptx", "model.xlsm"])
def test_a_password_protected_office_file_is_a_skip_by_policy_not_a_damaged_one(name: str) -> None:
    """Like a locked PDF, no run can read it without its password: a skip with that reason (the
    run stays ok), not `BadZipFile` on every run. The container is the same for every kind."""
    kind = {"xlsm": "XLSX"}.get(name.rsplit(".", 1)[1], name.rsplit(".", 1)[1].upper())
    with pytest.raises(
        EncryptedError, match=rf"^{re.escape(name)}: encrypted {kind} \(password-protected\): not read$"
    ) as err:
        extract_text(_PASSWORD_XLSX.read_bytes(), name)
    assert not err.value.failed


def test_an_ole2_file_that_is_not_encrypted_is_still_damaged() -> None:
    """A legacy `.doc` renamed `.docx` is an OLE2 file too, without an encrypted package: an error."""
    legacy = _PASSWORD_XLSX.read_bytes().replace(
        "EncryptedPackage".encode("utf-16-le"), "WordDocument0000".encode("utf-16-le")
    )
    with pytest.raises(ItemError, match=r"cannot read docx \(BadZipFile") as err:
        extract_text(legacy, "old.docx")
    assert err.value.failed


# What Word writes as `~$arterly report.docx` while `Quarterly report.docx` is open: the user's
# name, padded, in 162 bytes
_OWNER_FILE = b"\x05alice" + b"\x20" * 49 + b"\x05\x00a\x00l\x00i\x00c\x00e\x00" + b"\x00" * 95


@pytest.mark.parametrize("name", ["~$arterly report.docx", "~$budget.xlsx", "~$deck.pptx"])
def test_an_office_owner_file_is_no_document_and_no_error(name: str) -> None:
    assert len(_OWNER_FILE) == 162
    with pytest.raises(NotADocumentError, match=rf"^{re.escape(name)}: Office owner file") as err:
        extract_text(_OWNER_FILE, name)
    assert not err.value.failed
    # a damaged document is still one, whatever its name starts with
    with pytest.raises(ItemError, match="BadZipFile") as damaged:
        extract_text(_OWNER_FILE, name.replace("~$", ""))
    assert damaged.value.failed


@pytest.mark.parametrize(
    "name", ["empty.docx", "empty.xlsx", "empty.pptx", "empty.pdf", "empty.docm", "empty.html", "empty.txt"]
)
def test_an_empty_file_has_no_text_whatever_its_kind(name: str) -> None:
    """Explorer's "New Word Document" is 0 bytes, which Word opens as a blank document: no text, no error."""
    assert extract_text(b"", name) == ""


def test_owner_password_and_empty_files_are_skips_by_policy_in_a_folder(tmp_path: Path) -> None:
    from inlet.connectors.files import FilesConnector
    from inlet.connectors.model import Document, Skipped
    from inlet.sandbox.documents import make_docx

    (tmp_path / "Quarterly report.docx").write_bytes(make_docx("Quarterly report", ["The grebe figures."]))
    (tmp_path / "~$arterly report.docx").write_bytes(_OWNER_FILE)
    (tmp_path / "budget.xlsx").write_bytes(_PASSWORD_XLSX.read_bytes())
    (tmp_path / "New Microsoft Word Document.docx").write_bytes(b"")
    (tmp_path / "blank.pdf").write_bytes(b"")
    config = FilesConnector.Config(name="docs", type="files", path=tmp_path)
    items = list(FilesConnector(config).load(None))
    assert [d.id for d in items if isinstance(d, Document)] == ["docs:Quarterly report.docx"]
    skipped = {s.id: s for s in items if isinstance(s, Skipped)}
    assert not any(s.failed for s in skipped.values())
    assert skipped["docs:budget.xlsx"].reason == "budget.xlsx: encrypted XLSX (password-protected): not read"
    assert skipped["docs:~$arterly report.docx"].reason.startswith("~$arterly report.docx: Office owner file")
    assert skipped["docs:New Microsoft Word Document.docx"].reason == "no text"
    assert skipped["docs:blank.pdf"].reason == "no text"


def _as_form(package: bytes, plain: str, form: str) -> bytes:
    """`package` with its main part's content type `form` where it was `plain`, as Office saves a
    macro-enabled document, a template or a slide show."""
    return _changed(package, {"[Content_Types].xml": lambda xml: xml.replace(plain.encode(), form.encode())})


_WORD = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_DECK = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"
_BOOK = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"


@pytest.mark.parametrize(
    ("name", "plain", "form"),
    [
        ("memo.docm", _WORD, "application/vnd.ms-word.document.macroEnabled.main+xml"),
        ("letter.dotx", _WORD, "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml"),
        ("letter.dotm", _WORD, "application/vnd.ms-word.template.macroEnabledTemplate.main+xml"),
        ("deck.pptm", _DECK, "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml"),
        ("show.ppsx", _DECK, "application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml"),
        ("show.ppsm", _DECK, "application/vnd.ms-powerpoint.slideshow.macroEnabled.main+xml"),
        ("brand.potx", _DECK, "application/vnd.openxmlformats-officedocument.presentationml.template.main+xml"),
        ("margin-model.xlsm", _BOOK, "application/vnd.ms-excel.sheet.macroEnabled.main+xml"),
        ("form.xltx", _BOOK, "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml"),
    ],
)
def test_macro_enabled_template_and_slide_show_office_files_are_read_as_their_package(
    name: str, plain: str, form: str
) -> None:
    """The same OOXML package as a .docx, .pptx or .xlsx (only the main part's content type
    differs): read alike, by its name or by the type a mail attachment comes with."""
    from inlet.sandbox.documents import make_docx, make_pptx, make_xlsx

    suffix = name.rsplit(".", 1)[1]
    kind = {"d": "docx", "p": "pptx", "x": "xlsx"}[suffix[0]]
    base = {
        "docx": lambda: make_docx("Margin memo", ["The skua margin is 12 percent."]),
        "pptx": lambda: make_pptx("Margin memo", [("Margins", "The skua margin is 12 percent.")]),
        "xlsx": lambda: make_xlsx("Margin memo", {"Margins": [["skua", "12 percent"]]}),
    }[kind]()
    package = _as_form(base, plain, form)
    assert form.encode() in zipfile.ZipFile(io.BytesIO(package)).read("[Content_Types].xml")
    assert kind_of(name) == kind
    text = extract_text(package, name)
    assert "skua" in text and text == extract_text(base, f"plain.{kind}")
    assert document_title(package, name, text) == document_title(base, f"plain.{kind}", text)
    mime = {
        "docm": "application/vnd.ms-word.document.macroEnabled.12",
        "xlsm": "application/vnd.ms-excel.sheet.macroEnabled.12",
        "pptm": "application/vnd.ms-powerpoint.presentation.macroEnabled.12",
    }.get(suffix)
    if mime is not None:  # a mail attachment, by its registered type
        assert kind_of("attachment", mime) == kind
        assert extract_text(package, "attachment", mime) == text


def test_a_folder_reads_macro_enabled_workbooks(tmp_path: Path) -> None:
    from inlet.connectors.files import FilesConnector
    from inlet.connectors.model import Document, Skipped
    from inlet.sandbox.documents import make_xlsx

    book = make_xlsx("Model", {"Margins": [["skua", "12 percent"]]})
    (tmp_path / "margin-model.xlsm").write_bytes(
        _as_form(book, _BOOK, "application/vnd.ms-excel.sheet.macroEnabled.main+xml")
    )
    config = FilesConnector.Config(name="docs", type="files", path=tmp_path)
    items = list(FilesConnector(config).load(None))
    assert not [s for s in items if isinstance(s, Skipped)]
    assert ["skua" in d.text for d in items if isinstance(d, Document)] == [True]


W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_NUMBERING = (
    f'<w:abstractNum {W} w:abstractNumId="90"><w:multiLevelType w:val="multilevel"/>'
    '<w:lvl w:ilvl="0"><w:start w:val="7"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1."/></w:lvl>'
    '<w:lvl w:ilvl="1"><w:start w:val="1"/><w:numFmt w:val="decimal"/><w:lvlText w:val="%1.%2"/></w:lvl>'
    '<w:lvl w:ilvl="2"><w:start w:val="1"/><w:numFmt w:val="lowerLetter"/><w:lvlText w:val="(%3)"/></w:lvl>'
    "</w:abstractNum>"
    f'<w:abstractNum {W} w:abstractNumId="91"><w:lvl w:ilvl="0"><w:start w:val="1"/><w:numFmt w:val="upperRoman"/>'
    '<w:lvlText w:val="%1)"/></w:lvl></w:abstractNum>'
    f'<w:num {W} w:numId="90"><w:abstractNumId w:val="90"/></w:num>'
    f'<w:num {W} w:numId="91"><w:abstractNumId w:val="91"/></w:num>'
    f'<w:num {W} w:numId="92"><w:abstractNumId w:val="91"/>'
    '<w:lvlOverride w:ilvl="0"><w:startOverride w:val="1"/></w:lvlOverride></w:num>'
)


def _numbered(paragraph, num_id: int, level: int = 0) -> None:
    from docx.oxml import parse_xml

    paragraph._p.get_or_add_pPr().append(
        parse_xml(f'<w:numPr {W}><w:ilvl w:val="{level}"/><w:numId w:val="{num_id}"/></w:numPr>')
    )


def test_word_automatic_numbering_is_read_as_the_labels_word_shows() -> None:
    """A procedure's steps, a contract's clauses (7, 7.1, (a)), bullets and a list restarted by
    its own instance read with their numbers: "Step 3" and "see 7.2" point at something."""
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    numbering = document.part.numbering_part.element
    for element in parse_xml(f"<w:numbering {W}>{_NUMBERING}</w:numbering>"):
        numbering.append(element)
    document.add_paragraph("Refund procedure", style="Heading 1")
    for step in ("Check the receipt.", "Open the kea refund form.", "Approve refunds under 50 EUR."):
        document.add_paragraph(step, style="List Number")
    document.add_paragraph("Step 3 applies to the kea stores only.")
    document.add_paragraph("Bring the receipt", style="List Bullet")
    clauses = [("Termination", 0), ("Notice of 30 days.", 1), ("In writing", 2), ("By post", 2), ("Fees stay due.", 1)]
    for text, level in [*clauses, ("Governing law", 0), ("Swiss law applies.", 1)]:
        _numbered(document.add_paragraph(text, style="Heading 2" if level == 0 else None), 90, level)
    for num_id, text in ((91, "First"), (91, "Second"), (92, "Again first"), (92, "Again second")):
        _numbered(document.add_paragraph(text), num_id)
    assert extract_text(_saved(document), "refunds.docx").split("\n\n") == [
        "# Refund procedure",
        "1. Check the receipt.",
        "2. Open the kea refund form.",
        "3. Approve refunds under 50 EUR.",
        "Step 3 applies to the kea stores only.",
        "- Bring the receipt",
        "## 7. Termination",
        "7.1 Notice of 30 days.",
        "(a) In writing",
        "(b) By post",
        "7.2 Fees stay due.",
        "## 8. Governing law",
        "8.1 Swiss law applies.",
        "I) First",
        "II) Second",
        "I) Again first",
        "II) Again second",
    ]


M = 'xmlns:m="http://schemas.openxmlformats.org/officeDocument/2006/math"'


def _with_body_xml(*paragraphs: str) -> bytes:
    """A DOCX whose body holds `paragraphs` (WordprocessingML), before its section properties."""
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    end = document.element.body[-1]
    for xml in paragraphs:
        end.addprevious(parse_xml(xml))
    return _saved(document)


def _run(text: str) -> str:
    return f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>'


def test_unfilled_content_controls_are_not_their_placeholder_prompts() -> None:
    """A form field left empty shows Word's grey prompt (`w:showingPlcHdr`): the field holds no
    text, the prompt is not its answer; a filled one is read."""

    def field(label: str, content: str, placeholder: str) -> str:
        return (
            f"<w:p {W}>{_run(label + ': ')}<w:sdt><w:sdtPr>{placeholder}</w:sdtPr>"
            f"<w:sdtContent>{_run(content)}</w:sdtContent></w:sdt></w:p>"
        )

    form = _with_body_xml(
        field("Root cause", "Click or tap here to enter text.", "<w:showingPlcHdr/>"),
        field("Date", "Click or tap to enter a date.", '<w:showingPlcHdr w:val="true"/>'),
        field("Owner", "Dana from the smew team", ""),
        field("Severity", "High", '<w:showingPlcHdr w:val="false"/>'),
        f"<w:sdt {W}><w:sdtPr><w:showingPlcHdr/></w:sdtPr><w:sdtContent><w:p>{_run('Enter the summary here.')}"
        "</w:p></w:sdtContent></w:sdt>",
    )
    assert (
        extract_text(form, "incident.docx")
        == "Root cause:\n\nDate:\n\nOwner: Dana from the smew team\n\nSeverity: High"
    )


def test_word_equations_are_read_as_their_linear_text() -> None:
    """Office Math (`m:oMath` in a sentence, `m:oMathPara` as a paragraph of its own) is part of
    the text as Word shows it: a threshold or a pricing formula is searchable."""

    def r(text: str) -> str:
        return f"<m:r><m:t>{text}</m:t></m:r>"

    inline = f"<m:oMath>{r('E=m')}<m:sSup><m:e>{r('c')}</m:e><m:sup>{r('2')}</m:sup></m:sSup></m:oMath>"
    fraction = f"<m:f><m:num>{r('price')}</m:num><m:den>{r('units-1')}</m:den></m:f>"
    display = f"<m:oMathPara><m:oMath>{r('margin=')}{fraction}</m:oMath></m:oMathPara>"
    document = _with_body_xml(
        f"<w:p {W} {M}>{_run('Energy: ')}{inline}{_run(' as stated.')}</w:p>",
        f"<w:p {W} {M}>{display}</w:p>",
    )
    assert extract_text(document, "formulas.docx") == "Energy: E=mc^2 as stated.\n\nmargin=(price)/(units-1)"


_TC_NS = "http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments"
_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_TC_REL = "http://schemas.microsoft.com/office/2017/10/relationships/threadedComment"
_PERSON_REL = "http://schemas.microsoft.com/office/2017/10/relationships/person"


def test_xlsx_notes_threaded_comments_and_page_headers_are_text() -> None:
    """As for a DOCX: the note explaining a number ("why was South lowered?"), a threaded
    comment and its reply, and the header a reader sees on every printed page; each header text
    once, printer fields ("Page &P of &N") left out."""
    import openpyxl
    from openpyxl.comments import Comment

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Forecast"
    for row in (["Region", "Q1"], ["North", 120], ["South", 95]):
        sheet.append(row)
    sheet["B3"].comment = Comment("Maria:\nSouth lowered: the fulmar distributor went bankrupt", "Maria")
    sheet["A2"].comment = Comment("North checked twice", "Tom")
    sheet.oddHeader.center.text = "DRAFT fulmar forecast, not for customers"
    sheet.oddFooter.right.text = "Page &P of &N"
    other = book.create_sheet("Notes only")
    other.oddHeader.center.text = "DRAFT fulmar forecast, not for customers"  # the same header: once
    other["C4"].comment = Comment("[Threaded comment]\n\nYour version of Excel allows you to read ...", "tc=1")
    threads = (
        f'<ThreadedComments xmlns="{_TC_NS}">'
        '<threadedComment ref="C4" personId="{P1}" id="{T1}"><text>Who owns the gannet line?</text></threadedComment>'
        '<threadedComment ref="C4" personId="{P2}" id="{T2}" parentId="{T1}"><text>Lee does.</text></threadedComment>'
        "</ThreadedComments>"
    )
    people = (
        f'<personList xmlns="{_TC_NS}"><person displayName="Ana" id="{{P1}}"/>'
        '<person displayName="Lee Chen" id="{P2}"/></personList>'
    )

    def related(rels: bytes, target: str, kind: str) -> bytes:
        return rels.replace(
            b"</Relationships>", f'<Relationship Id="rX9" Type="{kind}" Target="{target}"/></Relationships>'.encode()
        )

    package = _changed(
        _saved(book),
        {
            "xl/worksheets/_rels/sheet2.xml.rels": lambda x: related(x, "../threadedComments/t1.xml", _TC_REL),
            "xl/_rels/workbook.xml.rels": lambda x: related(x, "persons/person.xml", _PERSON_REL),
        },
        {"xl/threadedComments/t1.xml": threads.encode(), "xl/persons/person.xml": people.encode()},
    )
    assert extract_text(package, "forecast.xlsx").split("\n\n") == [
        "## Forecast",
        "Region | Q1\nNorth | 120\nSouth | 95",
        "Comment on A2 (Tom): North checked twice",
        "Comment on B3 (Maria): South lowered: the fulmar distributor went bankrupt",
        "DRAFT fulmar forecast, not for customers",
        "## Notes only",
        "Comment on C4 (Ana): Who owns the gannet line?; reply (Lee Chen): Lee does.",
    ]


def test_pdf_review_comments_are_text_links_and_popups_are_not() -> None:
    """A reviewed contract's decision is often only in its comments: a sticky note (with its
    author and a reply), a text box; a link's or a pop-up's /Contents are no comment."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.annotations import FreeText, Link, Popup, Text
    from pypdf.generic import NameObject, TextStringObject

    from inlet.sandbox.documents import make_pdf

    writer = PdfWriter()
    writer.append(
        PdfReader(io.BytesIO(make_pdf("Supply", ["Clause 4: the gadwall supplier delivers within 30 days."])))
    )
    note = Text(rect=(50, 550, 70, 570), text="30 days is too long, ask for 14", open=False)
    note[NameObject("/T")] = TextStringObject("Maria (Legal)")
    added = writer.add_annotation(0, note)
    reply = Text(rect=(50, 550, 70, 570), text="Agreed with the gadwall supplier", open=False)
    reply[NameObject("/T")] = TextStringObject("Tom")
    reply[NameObject("/IRT")] = added.indirect_reference
    writer.add_annotation(0, reply)
    writer.add_annotation(0, FreeText(text="rejected by procurement", rect=(50, 400, 300, 450)))
    link = Link(rect=(10, 10, 20, 20), url="https://example.com/")
    link[NameObject("/Contents")] = TextStringObject("LINKTEXT")
    writer.add_annotation(0, link)
    popup = Popup(rect=(10, 10, 20, 20), parent=added)
    popup[NameObject("/Contents")] = TextStringObject("POPUPTEXT")
    writer.add_annotation(0, popup)
    out = io.BytesIO()
    writer.write(out)
    text = extract_text(out.getvalue(), "supply.pdf")
    assert text.split("\n\n")[-3:] == [
        "Comment (Maria (Legal)): 30 days is too long, ask for 14",
        "Reply (Tom): Agreed with the gadwall supplier",
        "Comment: rejected by procurement",
    ]
    assert "Clause 4" in text and "LINKTEXT" not in text and "POPUPTEXT" not in text


@pytest.mark.parametrize(
    ("name", "metadata", "title"),
    [
        ("brant-contract.pdf", "Microsoft Word - Document1", None),
        ("budget.pdf", "Microsoft Word - Q3 brant budget.docx", "Q3 brant budget"),
        ("brant-roadmap.pptx", "PowerPoint Presentation", None),
        ("q3-budget-memo.docx", "ACME Memo Template v3", None),  # its heading is the template's too
        ("notes.docx", "Document3", "Memo for the brant budget"),
        ("model.xlsx", "Untitled spreadsheet", None),
        ("memo.dotx", "ACME Memo Template v3", "ACME Memo Template v3"),
        ("plan.docx", "Brant plan 2027", "Brant plan 2027"),
        ("guide.pdf", "Presentation skills for the brant team", "Presentation skills for the brant team"),
    ],
)
def test_a_title_a_program_or_a_template_wrote_does_not_stand_for_the_document(
    name: str, metadata: str, title: str | None
) -> None:
    """ "Microsoft Word - Document1", "PowerPoint Presentation", a template's title carried into
    every memo made from it: such a title would name unrelated documents alike in every result;
    the document's heading (not after a template's title), else its file name (None here: the
    caller's fallback), stands instead."""
    import docx
    import openpyxl
    from pptx import Presentation
    from pypdf import PdfReader, PdfWriter

    from inlet.sandbox.documents import make_pdf

    kind = kind_of(name)
    if kind == "pdf":
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf("Contract for the brant project", []))))
        writer.add_metadata({"/Title": metadata})
        out = io.BytesIO()
        writer.write(out)
        data = out.getvalue()
    else:
        document = {"docx": docx.Document, "pptx": Presentation, "xlsx": openpyxl.Workbook}[kind]()
        if kind == "docx":
            document.add_heading("Memo for the brant budget", 1)
        properties = document.properties if kind == "xlsx" else document.core_properties
        properties.title = metadata
        data = _saved(document)
        if name.endswith(".dotx"):
            data = _as_form(
                data, _WORD, "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml"
            )
    assert document_title(data, name, extract_text(data, name)) == title
