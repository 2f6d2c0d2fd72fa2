"""What `connectors/extract.py` makes of encodings and office formats as workplaces hold them."""

import pytest

from inlet.connectors.extract import decode, extract_text
from inlet.errors import NotTextError

GERMAN = "Protokoll der Sitzung in München: Geschäftsführer Jürgen Weiß bestätigt das Budget."
CHINESE = "会议纪要：数据库迁移计划在星期五完成。负责人是王小明。"


def test_one_stray_byte_leaves_the_rest_of_a_utf8_text_as_it_is():
    assert decode(GERMAN.encode() + b" \x96 ok") == GERMAN + " – ok"  # the stray byte read alone
    assert extract_text(CHINESE.encode() + b"\x96\n", "zh.txt").startswith(CHINESE)  # text, not "binary"
    cut = "Grüße aus Zürich: 5 €".encode()[:-1]  # a file cut inside its last character
    assert decode(cut) == "Grüße aus Zürich: 5 \ufffd"


@pytest.mark.parametrize(
    "encoding, text",
    [
        ("shift_jis", "東京オフィスの引っ越しは来月です。担当は田中さんです。"),
        ("gbk", CHINESE),
        ("euc-kr", "회의록: 데이터베이스 이전 계획은 금요일에 완료됩니다."),
        ("cp1251", "Заявление на отпуск подписывает бухгалтерия до пятницы."),
        ("cp1252", "It’s €100 for the “lynxharbor” upgrade – approved."),
        ("latin-1", "Café crème, naïve façade, señor."),
        ("cp1252", "Grüße"),
        ("cp1252", "€100 – paid"),  # too few letters for a detector: Windows-1252, as before
    ],
)
def test_legacy_encodings_are_read_as_the_text_they_hold(encoding, text):
    assert extract_text(text.encode(encoding) + b"\r\n", "notes.txt").strip() == text


# Ordinary office sentences the encoding detector once read as Korean or Thai mojibake (probe29d N1):
# their Korean reading is made of Hangul syllables outside KS X 1001, their Thai one of digits and signs
_MISREAD_ONCE = [
    ("shift_jis", "会議は金曜日に延期されました。担当は佐藤さんです。"),
    ("shift_jis", "倉庫の鍵は田中さんが持っています。"),
    ("shift_jis", "請求書を添付しますので、ご確認ください。"),
    ("cp932", "見積書を送付いたします。よろしくお願いいたします。"),
    ("shift_jis", "会議は金曜日に延期されました。担当は佐藤さんです。倉庫の鍵は田中さんが持っています。"),
    ("gbk", "预算审批被推迟了。"),
    ("euc_jp", "倉庫の鍵は田中さんが持っています。"),
    ("euc_jp", "予算の承認が遅れています。"),
    ("big5", "您好，請問明天的會議幾點開始？"),
    ("big5", "財務部李經理"),
]


@pytest.mark.parametrize("encoding, text", _MISREAD_ONCE)
def test_japanese_and_chinese_legacy_text_is_not_read_as_korean_or_thai(encoding: str, text: str) -> None:
    assert decode(text.encode(encoding)) == text
    assert decode((text + "\n").encode(encoding)) == text + "\n"


def test_utf16_without_a_byte_order_mark_is_text() -> None:
    """What `iconv -t UTF-16LE` and `bcp -w` write is read, not refused as binary (probe29d N9)."""
    text = "The capybarahub backup runs nightly at 01:00 on the NAS.\n"
    assert extract_text(text.encode("utf-16-le"), "backup.txt") == text
    assert extract_text(text.encode("utf-16-be"), "backup.txt") == text


def test_iso_2022_jp_text_is_read_by_its_shift_sequences() -> None:
    """7-bit Japanese (RFC 1468) with no label is not UTF-8 less its escapes (probe29d N11)."""
    notes = "議事録：倉庫の鍵は田中さんが持っています。次回は金曜日です。\n"
    assert extract_text(notes.encode("iso2022_jp"), "minutes.txt") == notes


def test_a_charset_parameter_of_the_type_says_how_text_is_read() -> None:
    notes = "会議は金曜日に延期されました。担当は佐藤さんです。\n"
    assert extract_text(notes.encode("shift_jis"), "a.txt", 'text/plain; charset="Shift_JIS"') == notes
    assert extract_text(notes.encode("euc_jp"), "a.txt", "text/plain; charset=x-euc-jp") == notes


def test_the_charset_html_or_xml_declares_is_honoured():
    russian = "Заявление на отпуск подписывает бухгалтерия."
    page = f'<html><head><meta charset="windows-1251"></head><body><p>{russian}</p></body></html>'
    assert extract_text(page.encode("cp1251"), "a.html") == russian
    japanese = "東京オフィスの引っ越しは来月です。"
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"></head>'
        f"<body><p>{japanese}</p></body></html>"
    )
    assert extract_text(page.encode("shift_jis"), "b.html") == japanese
    xml = f'<?xml version="1.0" encoding="koi8-r"?>\n<note>{russian}</note>\n'
    assert decode(xml.encode("koi8-r")) == xml


def test_random_bytes_are_still_no_text():
    import random

    noise = random.Random(7).randbytes(4000).replace(b"\x00", b"\x01")
    with pytest.raises(NotTextError):
        extract_text(noise, "noise.txt")


def _saved(document) -> bytes:
    """The bytes of a python-docx, python-pptx or openpyxl document."""
    import io

    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _docx(build) -> bytes:
    import docx

    document = docx.Document()
    build(document)
    return _saved(document)


W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def test_docx_content_controls_and_tracked_insertions_are_text_and_deletions_are_not():
    from docx.oxml import parse_xml

    def build(document):
        document.add_paragraph("Plain paragraph about the lemurbridge project.")
        end = document.element.body[-1]  # sectPr stays last
        end.addprevious(
            parse_xml(
                f'<w:sdt {W}><w:sdtPr><w:alias w:val="Summary"/></w:sdtPr><w:sdtContent><w:p><w:r>'
                "<w:t>Content control: the tapirgrove budget is 2.4 million.</w:t></w:r></w:p></w:sdtContent></w:sdt>"
            )
        )
        end.addprevious(
            parse_xml(
                f'<w:p {W}><w:r><w:t xml:space="preserve">Tracked change: the deadline is </w:t></w:r>'
                '<w:ins w:id="1" w:author="Dana"><w:r><w:t>moved to 14 March</w:t></w:r></w:ins>'
                '<w:del w:id="2" w:author="Dana"><w:r><w:delText>on 1 March</w:delText></w:r></w:del>'
                '<w:r><w:t xml:space="preserve"> for the </w:t></w:r><w:sdt><w:sdtContent><w:r><w:t>yakpass</w:t>'
                '</w:r></w:sdtContent></w:sdt><w:r><w:t xml:space="preserve"> rollout.</w:t></w:r></w:p>'
            )
        )

    assert extract_text(_docx(build), "a.docx").split("\n\n") == [
        "Plain paragraph about the lemurbridge project.",
        "Content control: the tapirgrove budget is 2.4 million.",
        "Tracked change: the deadline is moved to 14 March for the yakpass rollout.",
    ]


def test_docx_tables_stay_where_they_stand():
    def build(document):
        document.add_heading("Pricing", 1)
        document.add_paragraph("The plans cost, per seat and month:")
        table = document.add_table(rows=3, cols=2)
        for r, (plan, price) in enumerate([("Plan", "Price"), ("Basic", "19 EUR"), ("Premium", "49 EUR")]):
            table.cell(r, 0).text, table.cell(r, 1).text = plan, price
        table.cell(2, 1).add_paragraph("incl. support")
        document.add_heading("Termination", 1)
        document.add_paragraph("Either party may terminate with a notice of 90 days.")

    assert extract_text(_docx(build), "terms.docx").split("\n\n") == [
        "# Pricing",
        "The plans cost, per seat and month:",
        "Plan | Price",
        "Basic | 19 EUR",
        "Premium | 49 EUR incl. support",
        "# Termination",
        "Either party may terminate with a notice of 90 days.",
    ]


def test_pptx_tables_and_grouped_shapes_are_text():

    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Q3 review of the bonobotrail programme"
    table = slide.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(1.5)).table
    for r, (region, revenue) in enumerate([("Region", "Revenue"), ("EMEA", "4.1 M"), ("APAC", "2.7 M")]):
        table.cell(r, 0).text, table.cell(r, 1).text = region, revenue
    group = slide.shapes.add_group_shape()
    inner = group.shapes.add_group_shape()
    box = inner.shapes.add_textbox(Inches(1), Inches(4), Inches(3), Inches(1))
    box.text_frame.text = "Risk: the caracalgate supplier may slip to Q1."
    assert extract_text(_saved(deck), "q3.pptx") == (
        "## Slide 1\n\nQ3 review of the bonobotrail programme\nRegion | Revenue\nEMEA | 4.1 M\nAPAC | 2.7 M\n"
        "Risk: the caracalgate supplier may slip to Q1."
    )


def test_pptx_speaker_notes_and_charts_are_text():
    from pptx import Presentation
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Pipeline"
    data = CategoryChartData()
    data.categories = ["Q1", "Q2"]
    data.add_series("Wombatline bookings", (1.5, 2.5))
    data.add_series("Churn", (0.2, 0.1))
    chart = slide.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(2), Inches(6), Inches(4), data
    ).chart
    chart.has_title = True
    chart.chart_title.text_frame.text = "Bookings by quarter"
    slide.notes_slide.notes_text_frame.text = "Say that the kinkajoudeal closed in March."
    three_d = slide.shapes.add_chart(XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(5), Inches(3), Inches(2), data)
    three_d.chart.has_title = True
    three_d.chart.chart_title.text_frame.text = "Bookings in 3-D"
    plot = three_d.chart._chartSpace.find(".//{http://schemas.openxmlformats.org/drawingml/2006/chart}barChart")
    plot.tag = plot.tag.replace("barChart", "bar3DChart")  # a plot type python-pptx's plot objects refuse
    blank = deck.slides.add_slide(deck.slide_layouts[6])
    blank.notes_slide.notes_text_frame.text = " "  # a notes page left empty adds nothing
    assert extract_text(_saved(deck), "pipeline.pptx") == (
        "## Slide 1\n\nPipeline\nChart: Bookings by quarter\nSeries: Wombatline bookings, Churn\n"
        "Categories: Q1, Q2\nChart: Bookings in 3-D\nSeries: Wombatline bookings, Churn\nCategories: Q1, Q2\n"
        "Notes: Say that the kinkajoudeal closed in March."
    )


def test_xlsx_rows_are_not_padded_by_an_empty_formatted_cell_and_values_read_as_shown():
    import datetime

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Budget"
    sheet.cell(row=1, column=2).number_format = "0%"  # formatted, empty: a column left blank
    sheet.append([None, None, "Item", "Due", "Discount", "Amount", "Note"])
    sheet.append([None, None, "Licence of the kudutrack", datetime.date(2026, 3, 1), 0.15, 1250.5, None])
    sheet.append([None, None, "Support", None, None, 0.1 + 0.2, "paid"])
    sheet.cell(row=3, column=5).number_format = "0%"
    sheet.cell(row=1, column=200).number_format = "0%"  # formatting applied out to column GR, no value
    assert extract_text(_saved(book), "budget.xlsx") == (
        "## Budget\n\nItem | Due | Discount | Amount | Note\nLicence of the kudutrack | 2026-03-01 | 15% | 1250.5\n"
        "Support |  |  | 0.3 | paid"
    )


def test_a_word_hyphenated_at_a_pdf_line_end_is_joined_and_a_compound_keeps_its_hyphen():
    from inlet.sandbox.documents import make_pdf

    broken = "Budget " * 11 + "the perfor- mance review."  # wrapped after "perfor-"
    compound = "A well-known rule: " + "the " * 16 + "well-known rule holds."  # wrapped after "well-"
    text = extract_text(make_pdf("Report", [broken, compound]), "report.pdf")
    assert "the performance\nreview." in text
    assert "the well-known\nrule holds." in text


@pytest.mark.parametrize("encoding", ["iso-8859-2", "cp1250"])
@pytest.mark.parametrize(
    "text",
    [
        "Zażółć gęślą jaźń - spotkanie w Łodzi w środę.\n",
        "Spotkanie zarządu odbędzie się w środę w Łodzi. Proszę przygotować sprawozdanie finansowe, plan "
        "sprzedaży oraz listę zadań na następny kwartał. Źródła danych: księgowość i dział kadr.\n",
        "Příliš žluťoučký kůň úpěl ďábelské ódy. Schůzka vedení je ve středu v Brně.\n" * 3,
    ],
)
def test_central_european_text_reads_in_either_of_its_code_pages(text: str, encoding: str) -> None:
    """Polish and Czech read as well in ISO-8859-10 to the detector: the page people write in wins."""
    assert decode(text.encode(encoding)) == text


@pytest.mark.parametrize(
    ("page", "reads"),
    [
        ("Use the self-\nservice portal.", "self-service"),
        ("Sign the non-\ndisclosure form.", "non-disclosure"),
        ("Send an e-\nmail today.", "e-mail"),
        ("The access re-\nview is due. Review it.", "review"),  # the text has the word unbroken
        ("Our quarterly perfor-\nmance review.", "performance"),
    ],
)
def test_a_compound_broken_at_its_own_hyphen_keeps_it(page: str, reads: str) -> None:
    """A compound a line end broke at its own hyphen stays one ("self-service" is found as itself
    and as "self service"); a word the typesetter hyphenated is joined."""
    from inlet.connectors.extract import _dehyphenated

    assert f" {reads}\n" in _dehyphenated(page)


@pytest.mark.parametrize(
    "readme, title",
    [
        ("# Gazelle [![Build Status](https://ci.example.com/g.svg)](https://ci.example.com/g)\n\nText.", "Gazelle"),
        ("# Welcome to **Gazelle** `v2`\n\nText.", "Welcome to Gazelle v2"),
        ('<p align="center"><img src="logo.png"></p>\n<h1 align="center">Gazelle Importer</h1>\n', "Gazelle Importer"),
        ("Intro.\n\n## The [config_file](docs/config.md) format ##\n", "The config_file format"),
    ],
)
def test_a_markdown_title_is_its_heading_as_it_renders(readme, title):
    from inlet.connectors.extract import document_title

    assert document_title(readme.encode(), "README.md", extract_text(readme.encode(), "README.md")) == title


def test_terminal_escape_sequences_are_not_text():
    log = (
        b"\x1b[31mTIMEOUT\x1b[0m upstream \x1b[1mpelicanstore\x1b[0m did not answer\n"
        b"\x1b]0;ci job\x07\x1b[2K\x1b[1;32mPASSED\x1b[0m see "
        b"\x1b]8;;https://ci.example.com/7\x1b\\job 7\x1b]8;;\x1b\\\n"
    )
    assert extract_text(log, "ci-output.txt") == "TIMEOUT upstream pelicanstore did not answer\nPASSED see job 7\n"


# A DOCX, PPTX or XLSX file small on disk whose parts unpack to far more (probe27d F9)
UNPACK_ALLOWANCE = 100_000_000  # what its parts may unpack to beyond its own size (docs/connectors/files.md)
_BODIES = {
    "plan.docx": "word/document.xml",
    "deck.pptx": "ppt/slides/slide1.xml",
    "sheet.xlsx": "xl/worksheets/sheet1.xml",
}


def _package(name: str) -> bytes:
    from inlet.sandbox.documents import make_docx, make_pptx, make_xlsx

    if name.endswith(".docx"):
        return make_docx("Launch plan", ["The launch date is March 3."])
    if name.endswith(".pptx"):
        return make_pptx("Launch plan", [])
    return make_xlsx("Launch plan", {"Dates": [["launch", "March 3"]]})


def _rezipped(package: bytes, member: str, padding: int) -> bytes:
    """`package` with `padding` bytes of blanks after the XML of `member`: still a valid package,
    a few hundred KB on disk (blanks deflate about 230:1 even at the fastest level), unpacking to
    `padding` bytes more."""
    import io
    import zipfile

    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(package)) as old,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as new,
    ):
        for info in old.infolist():
            with old.open(info) as part, new.open(info.filename, "w", force_zip64=True) as to:
                to.write(part.read())
                if info.filename == member:
                    blanks = b" " * 4_000_000
                    for at in range(0, padding, len(blanks)):
                        to.write(blanks[: padding - at])
    return out.getvalue()


def _declaring(package: bytes, member: str, size: int) -> bytes:
    """`package` with its central directory declaring `size` unpacked bytes for `member` (what
    it holds is unchanged: a part that holds less than declared reads whole, its CRC intact)."""
    import struct

    header = struct.unpack_from("<I", package, package.rindex(b"PK\x05\x06") + 16)[0]  # the directory's start
    while package[header : header + 4] == b"PK\x01\x02":
        name, extra, comment = struct.unpack_from("<3H", package, header + 28)
        if package[header + 46 : header + 46 + name].decode() == member:
            return package[: header + 24] + struct.pack("<I", size) + package[header + 28 :]
        header += 46 + name + extra + comment
    raise AssertionError(f"no {member} in the package")


@pytest.mark.parametrize("name", _BODIES)
def test_an_office_file_that_unpacks_past_the_limit_is_skipped_by_policy_naming_its_size(name):
    from inlet.errors import UnpacksTooLargeError

    bomb = _rezipped(_package(name), _BODIES[name], UNPACK_ALLOWANCE + 2_000_000)
    assert len(bomb) < 1_000_000  # far under any max_file_bytes
    with pytest.raises(UnpacksTooLargeError, match=r"unpacks to 10[23]\.\d MB, over the limit of 100\.\d MB") as err:
        extract_text(bomb, name)
    assert not err.value.failed  # a skip by policy: the run stays ok


@pytest.mark.parametrize("name", _BODIES)
def test_the_limit_is_decided_on_the_zip_directory_before_anything_is_parsed(name):
    """The part holds a few KB and would read as it always did: only its declared size is over
    the limit, so a refusal shows the decision was made before any part was inflated or parsed."""
    import io
    import zipfile

    from inlet.connectors.extract import document_title
    from inlet.errors import UnpacksTooLargeError

    package = _package(name)
    assert "Launch" in extract_text(package, name) or "March 3" in extract_text(package, name)
    claims = _declaring(package, _BODIES[name], 3_000_000_000)
    with pytest.raises(UnpacksTooLargeError, match=r"unpacks to 3,000\.\d MB"):
        extract_text(claims, name)
    assert document_title(claims, name, "") is None  # the title's reader refuses it too
    # at the limit exactly, it is read as before
    with zipfile.ZipFile(io.BytesIO(package)) as parts:
        others = sum(i.file_size for i in parts.infolist() if i.filename != _BODIES[name])
    at_limit = _declaring(package, _BODIES[name], len(package) + UNPACK_ALLOWANCE - others)
    assert extract_text(at_limit, name) == extract_text(package, name)


def test_a_part_holding_more_than_its_declared_size_is_read_no_further():
    """What the directory declares bounds what is inflated: a part that holds more is cut there
    and fails its CRC check (a damaged file, an error), not read to its end."""
    from inlet.errors import ItemError

    package = _rezipped(_package("plan.docx"), "word/document.xml", 20_000_000)
    lying = _declaring(package, "word/document.xml", 4_000)
    with pytest.raises(ItemError, match="cannot read docx .*CRC") as err:
        extract_text(lying, "plan.docx")
    assert err.value.failed


def _pdf_of_pages(pages: int, padding: int) -> bytes:
    """A PDF of `pages` pages, each saying "hello" in a content stream of `padding` blanks more:
    a few hundred KB, its pages' contents unpacking to `pages * padding` bytes."""
    import io
    import zlib

    stream = zlib.compress(b"BT /F1 12 Tf 72 720 Td (hello) Tj ET\n" + b" " * padding, 1)
    kids = " ".join(f"{4 + 2 * n} 0 R" for n in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for n in range(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * n} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream + b"\nendstream")
    out, offsets = io.BytesIO(b"%PDF-1.4\n"), []
    out.seek(0, 2)
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    out.write("".join(f"{at:010d} 00000 n \n" for at in offsets).encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def test_a_pdf_whose_pages_unpack_past_the_limit_is_refused_before_the_next_page_is_read():
    """pypdf keeps what it inflated, and a PDF declares no unpacked sizes: 180 MB of contents in a
    file of 0.5 MB are counted page by page and refused past the limit, before any is parsed."""
    from inlet.errors import UnpacksTooLargeError

    assert extract_text(_pdf_of_pages(3, 1_000), "small.pdf") == "hello\n\nhello\n\nhello"
    bomb = _pdf_of_pages(3, 60_000_000)
    assert len(bomb) < 1_000_000
    with pytest.raises(UnpacksTooLargeError, match=r"the contents of its first 2 pages unpack to 120\.0 MB") as err:
        extract_text(bomb, "big.pdf")  # the third page is never inflated, no page parsed (seconds each)
    assert not err.value.failed


@pytest.mark.parametrize(
    "title",
    ["Why <div> beats <table> for layout", "Generics: List<String> vs List<Object>", "a < b > c", "Q&amp;A &lt;b&gt;"],
)
def test_an_html_title_is_its_text_tag_like_words_included(title):
    """probe29e F8: <title> is text up to </title> (RCDATA), as a browser's tab shows it; only an
    <h1> fallback holds markup to drop."""
    import html

    from inlet.connectors.extract import document_title

    page = f"<html><head><title>{title}</title></head><body><p>x</p></body></html>".encode()
    assert document_title(page, "page.html", "x", "text/html") == html.unescape(title)
    headed = b"<html><body><h1>On <em>call</em> rota</h1><p>x</p></body></html>"
    assert document_title(headed, "page.html", "x", "text/html") == "On call rota"


def _pdf_rewritten(pdf: bytes, change) -> bytes:
    """`pdf` copied by pypdf's writer, `change(writer)` applied before it is written."""
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(pdf)))
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_an_encrypted_pdf_is_a_skip_by_policy_and_one_anyone_may_open_is_read():
    """A PDF locked with a user password stays unreadable whatever the run does: a skip with its
    reason, the run ok; one with an empty user password (only printing or copying restricted) is read."""
    from inlet.errors import EncryptedError
    from inlet.sandbox.documents import make_pdf

    pdf = make_pdf("Pay", ["Salary review of the ibexfold team."])
    locked = _pdf_rewritten(pdf, lambda w: w.encrypt(user_password="secret", owner_password="owner"))
    with pytest.raises(EncryptedError, match=r"^pay\.pdf: encrypted PDF \(password-protected\): not read$") as err:
        extract_text(locked, "pay.pdf")
    assert not err.value.failed
    open_to_all = _pdf_rewritten(pdf, lambda w: w.encrypt(user_password="", owner_password="owner"))
    assert "Salary review of the ibexfold team." in extract_text(open_to_all, "pay.pdf")


def test_the_values_filled_into_a_pdf_form_are_text():
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject, NumberObject, TextStringObject

    from inlet.sandbox.documents import make_pdf

    def fill(writer):
        def field(name, kind, value):
            return writer._add_object(
                DictionaryObject(
                    {
                        NameObject("/FT"): NameObject(kind),
                        NameObject("/T"): TextStringObject(name),
                        NameObject("/V"): value,
                        NameObject("/Type"): NameObject("/Annot"),
                        NameObject("/Subtype"): NameObject("/Widget"),
                        NameObject("/Rect"): ArrayObject([NumberObject(n) for n in (72, 500, 400, 520)]),
                    }
                )
            )

        fields = ArrayObject(
            [
                field("Employee", "/Tx", TextStringObject("Zebulon Quaggafield")),
                field("Approved", "/Btn", NameObject("/Yes")),
                field("Notes", "/Tx", TextStringObject("")),
            ]
        )
        writer.pages[0][NameObject("/Annots")] = fields
        writer._root_object[NameObject("/AcroForm")] = DictionaryObject({NameObject("/Fields"): fields})

    form = _pdf_rewritten(make_pdf("Leave request", ["Filled in by the employee."]), fill)
    assert (
        extract_text(form, "form.pdf") == "Leave request\nFilled in by the employee.\n\nEmployee: Zebulon Quaggafield"
    )


def _docx_part(document, name: str, content_type: str, reltype: str, blob: bytes) -> str:
    """Add a part to a python-docx document, related to its main part: the relationship's id."""
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part

    part = Part(PackURI(name), content_type, blob, document.part.package)
    return document.part.relate_to(part, reltype)


RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
TEXT_BOX = (
    '<w:p xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:v="urn:schemas-microsoft-com:vml">'
    '<w:r><w:t xml:space="preserve">Anchor. </w:t></w:r><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing>'
    '<wp:anchor><wp:docPr id="5" name="Text Box 5"/><a:graphic><a:graphicData '
    'uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"><wps:wsp><wps:txbx><w:txbxContent>'
    "<w:p><w:r><w:t>Text box: the gannetline deadline is 30 April.</w:t></w:r></w:p>"
    "</w:txbxContent></wps:txbx></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing></mc:Choice>"
    "<mc:Fallback><w:pict><v:shape><v:textbox><w:txbxContent><w:p><w:r><w:t>Text box: the gannetline deadline is "
    "30 April.</w:t></w:r></w:p></w:txbxContent></v:textbox></v:shape></w:pict></mc:Fallback></mc:AlternateContent>"
    "</w:r></w:p>"
)


def _notes(kind: str, text: str) -> bytes:
    """A footnotes or endnotes part: its two separators and one note saying `text`."""
    return (
        f'<w:{kind}s {W}><w:{kind} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{kind}>'
        f'<w:{kind} w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p>'
        f'</w:{kind}><w:{kind} w:id="1"><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:{kind}></w:{kind}s>'
    ).encode()


def test_docx_text_boxes_footnotes_endnotes_and_comments_are_text():
    from docx.oxml import parse_xml

    main = "application/vnd.openxmlformats-officedocument.wordprocessingml"

    def build(document):
        paragraph = document.add_paragraph("The serval contract renews annually.")
        document.element.body[-1].addprevious(parse_xml(TEXT_BOX))
        document.add_paragraph("Last body paragraph.")
        footnotes = _notes("footnote", "The penalty for the serval contract is 5 percent.")
        _docx_part(document, "/word/footnotes.xml", f"{main}.footnotes+xml", RELS + "footnotes", footnotes)
        endnotes = _notes("endnote", "Source: the marmotannex.")
        _docx_part(document, "/word/endnotes.xml", f"{main}.endnotes+xml", RELS + "endnotes", endnotes)
        document.add_comment(paragraph.runs, text="Legal says the walrusclause must be removed.", author="Legal")

    assert extract_text(_docx(build), "contract.docx").split("\n\n") == [
        "The serval contract renews annually.",
        "Anchor.",
        "Text box: the gannetline deadline is 30 April.",  # once: its VML fallback is the same box
        "Last body paragraph.",
        "The penalty for the serval contract is 5 percent.",
        "Source: the marmotannex.",
        "Comment (Legal): Legal says the walrusclause must be removed.",
    ]


def test_docx_headers_and_footers_are_text_each_distinct_one_once():
    def build(document):
        document.add_paragraph("The ocelot budget is final.")
        first = document.sections[0]
        first.header.paragraphs[0].text = "Confidential: Project Quokkaharbour draft"
        first.footer.paragraphs[0].text = "Prepared by the finance team"
        first.different_first_page_header_footer = True
        first.first_page_header.paragraphs[0].text = "Confidential: Project Quokkaharbour draft"
        second = document.add_section()
        second.header.is_linked_to_previous = False
        second.header.paragraphs[0].text = "Appendix: revision 7"
        document.add_paragraph("The appendix lists the vendors.")
        # an imported chunk in a header: its id is the header part's own relationship, not the body's
        from docx.opc.packuri import PackURI
        from docx.opc.part import Part
        from docx.oxml import parse_xml

        html = Part(PackURI("/word/hchunk.htm"), "text/html", b"<p>Draft of the dingo deal</p>", document.part.package)
        rid = second.header.part.relate_to(html, RELS + "aFChunk")
        chunk = f'<w:altChunk {W} xmlns:r="{RELS[:-1]}" r:id="{rid}"/>'
        second.header._element.append(parse_xml(chunk))

    assert extract_text(_docx(build), "budget.docx").split("\n\n") == [
        "The ocelot budget is final.",
        "The appendix lists the vendors.",
        "Confidential: Project Quokkaharbour draft",  # the default and the first page's header: once
        "Prepared by the finance team",
        "Appendix: revision 7",
        "Draft of the dingo deal",
    ]


@pytest.mark.parametrize(
    ("content_type", "chunk"),
    [
        (
            "text/html",
            b"<html><body><h1>Incident report</h1><p>The toucanfield outage lasted 47 minutes.</p></body></html>",
        ),
        (
            "message/rfc822",
            b"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=B\r\n\r\n--B\r\n"
            b"Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"<h1>Incident report</h1><p>The toucanfield outage lasted 47 minutes.</p>\r\n--B--\r\n",
        ),
    ],
    ids=["html", "web-archive"],
)
def test_a_docx_of_an_imported_html_chunk_is_read_where_the_chunk_stands(content_type, chunk):
    """Web apps' "export to Word" writes the document as HTML imported by a `w:altChunk`."""
    from docx.oxml import parse_xml

    def build(document):
        document.add_paragraph("Exported from the tracker.")
        rid = _docx_part(document, "/word/afchunk.htm", content_type, RELS + "aFChunk", chunk)
        document.element.body[-1].addprevious(parse_xml(f'<w:altChunk {W} xmlns:r="{RELS[:-1]}" r:id="{rid}"/>'))
        document.add_paragraph("End of export.")

    assert extract_text(_docx(build), "incident.docx").split("\n\n") == [
        "Exported from the tracker.",
        "# Incident report",
        "The toucanfield outage lasted 47 minutes.",
        "End of export.",
    ]


def test_pptx_smartart_text_is_read():
    """SmartArt (process steps, org charts) keeps its text in the diagram's data part, which the
    slide's graphic frame points at, as PowerPoint writes it."""
    from pptx import Presentation
    from pptx.opc.package import Part
    from pptx.opc.packuri import PackURI
    from pptx.oxml import parse_xml

    a, dgm = (
        "http://schemas.openxmlformats.org/drawingml/2006/main",
        "http://schemas.openxmlformats.org/drawingml/2006/diagram",
    )
    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Onboarding of the quetzalpoint team"
    steps = ["Step 1: laptop from the IT desk", "Step 2: badge at reception", "Step 3: security training"]

    def point(n: int, text: str, kind: str = "") -> str:
        paragraph = f"<a:p><a:r><a:t>{text}</a:t></a:r></a:p>" if text else "<a:p/>"
        return f'<dgm:pt modelId="{{{n}}}"{kind}><dgm:prSet/><dgm:spPr/><dgm:t><a:bodyPr/>{paragraph}</dgm:t></dgm:pt>'

    points = point(0, "", ' type="doc"') + "".join(point(n, s) for n, s in enumerate(steps, 1))
    points += point(9, "", ' type="sibTrans"')  # a connector between two steps: no text
    data = (
        f'<dgm:dataModel xmlns:dgm="{dgm}" xmlns:a="{a}"><dgm:ptLst>{points}</dgm:ptLst><dgm:cxnLst/></dgm:dataModel>'
    )
    part = Part(PackURI("/ppt/diagrams/data1.xml"), f"{_DRAWINGML}.diagramData+xml", deck.part.package, data.encode())
    rid = slide.part.relate_to(part, RELS + "diagramData")
    slide.shapes._spTree.append(
        parse_xml(
            f'<p:graphicFrame xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="{a}" '
            f'xmlns:r="{RELS[:-1]}"><p:nvGraphicFramePr><p:cNvPr id="10" name="Diagram 1"/><p:cNvGraphicFramePr/>'
            '<p:nvPr/></p:nvGraphicFramePr><p:xfrm><a:off x="0" y="0"/><a:ext cx="7315200" cy="3657600"/></p:xfrm>'
            f'<a:graphic><a:graphicData uri="{dgm}"><dgm:relIds xmlns:dgm="{dgm}" r:dm="{rid}"/></a:graphicData>'
            "</a:graphic></p:graphicFrame>"
        )
    )
    assert extract_text(_saved(deck), "onboarding.pptx") == (
        "## Slide 1\n\nOnboarding of the quetzalpoint team\nStep 1: laptop from the IT desk\n"
        "Step 2: badge at reception\nStep 3: security training"
    )


_DRAWINGML = "application/vnd.openxmlformats-officedocument.drawingml"


def test_an_xlsx_formula_without_a_stored_value_shows_the_formula():
    """A workbook a program wrote (openpyxl, pandas) holds formulas without their values until a
    spreadsheet app computes them: the formula is shown, not an empty cell; a formula whose value
    the file holds (Excel saved it) reads as its value."""
    import io
    import zipfile

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Fleet"
    sheet.append(["Item", "Amount"])
    sheet.append(["puffinfleet fuel", 1200])
    sheet.append(["puffinfleet crew", 800])
    sheet.append(["Total", "=SUM(B2:B3)"])
    sheet.append(["Doubled", "=B4*2"])
    written = zipfile.ZipFile(io.BytesIO(_saved(book)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        for name in written.namelist():
            part = written.read(name)
            if name == "xl/worksheets/sheet1.xml":  # the total's value stored, as Excel saves it
                part = part.replace(b"<f>SUM(B2:B3)</f><v></v>", b"<f>SUM(B2:B3)</f><v>2000</v>")
            package.writestr(name, part)
    assert extract_text(out.getvalue(), "fleet.xlsx") == (
        "## Fleet\n\nItem | Amount\npuffinfleet fuel | 1200\npuffinfleet crew | 800\nTotal | 2000\nDoubled | =B4*2"
    )
