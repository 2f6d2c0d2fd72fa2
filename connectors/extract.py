"""Text out of the file formats every connector meets, with well-kept libraries.

Shared by the files, Slack, Drive and mail connectors so a PDF reads the same wherever it lives.
What is read as text (plain text, Markdown, HTML, a file without a suffix) is text: binary bytes
under such a name are refused (`NotTextError`), never indexed as mojibake. A DOCX, PPTX or XLSX
file (a zip of parts) is opened only when its parts unpack to at most its own size plus
`UNPACK_ALLOWANCE`, by the sizes its zip directory declares, checked before anything is inflated:
a small file that unpacks to gigabytes is refused by policy (`UnpacksTooLargeError`), not read
until the process runs out of memory. A PDF, which declares no such sizes, is refused as soon as
its pages' contents unpack past the same limit, before any is parsed. A PDF, DOCX, PPTX or XLSX
file locked with a password inlet does not have is refused by policy too (`EncryptedError`): no
run can read it; so is an Office owner file (`~$report.docx`: `NotADocumentError`), which is no
document. An empty file has no text, whatever its kind.
"""

from __future__ import annotations

import codecs
import datetime
import functools
import html as html_lib
import io
import logging
import mimetypes
import re
import textwrap
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from html.entities import html5 as _NAMED_REFERENCES
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from inlet.errors import EncryptedError, ItemError, NotADocumentError, NotTextError, UnpacksTooLargeError

from .charsets import AS_BROWSERS_READ, WHATWG_LABELS

if TYPE_CHECKING:
    from .docx_numbering import Numbering

log = logging.getLogger(__name__)

_BY_MIME = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template": "docx",
    "application/vnd.ms-word.document.macroenabled.12": "docx",
    "application/vnd.ms-word.template.macroenabled.12": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.presentationml.slideshow": "pptx",
    "application/vnd.openxmlformats-officedocument.presentationml.template": "pptx",
    "application/vnd.ms-powerpoint.presentation.macroenabled.12": "pptx",
    "application/vnd.ms-powerpoint.slideshow.macroenabled.12": "pptx",
    "application/vnd.ms-powerpoint.template.macroenabled.12": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template": "xlsx",
    "application/vnd.ms-excel.sheet.macroenabled.12": "xlsx",
    "application/vnd.ms-excel.template.macroenabled.12": "xlsx",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "text",
    "text/x-markdown": "text",
    "text/csv": "text",
    "application/json": "text",
    "application/xml": "text",
}
_TEXT_SUFFIXES = {
    ".txt",
    ".md",
    ".markdown",
    ".rst",
    ".csv",
    ".log",
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    ".py",
    ".js",
    ".ts",
    ".sql",
    ".sh",
    ".eml",
}


# What the parts of a DOCX, PPTX or XLSX file may unpack to beyond the file's own size. python-docx
# and python-pptx load every part whole and parse the XML ones into trees of about ten times their
# size, so 100 MB of XML is about 1 GB of memory; the body of a 5,000-page Word file is about 55 MB.
# Pictures and media are stored about as packed: the caller already holds them (within its
# `max_file_bytes`), hence the file's own size on top. A PDF's page contents have the same bound.
UNPACK_ALLOWANCE = 100_000_000
_PACKAGES = ("docx", "pptx", "xlsx")
# The suffixes of each package kind (ECMA-376): the document, its macro-enabled form, its templates
# and (PowerPoint) its slide shows are one package; only the main part's content type differs
PACKAGE_SUFFIXES = {
    "docx": (".docx", ".docm", ".dotx", ".dotm"),
    "pptx": (".pptx", ".pptm", ".ppsx", ".ppsm", ".potx", ".potm"),
    "xlsx": (".xlsx", ".xlsm", ".xltx", ".xltm"),
}
_KIND_OF_SUFFIX = {suffix: kind for kind, suffixes in PACKAGE_SUFFIXES.items() for suffix in suffixes}
# The content type of the main part of each package kind, and those of its other forms, which
# python-docx and python-pptx refuse though the parts are the same (openpyxl reads them all)
_MAIN_PART = {
    "docx": (
        b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        (
            b"application/vnd.ms-word.document.macroEnabled.main+xml",
            b"application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
            b"application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
        ),
    ),
    "pptx": (
        b"application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
        (
            b"application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml",
            b"application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml",
            b"application/vnd.ms-powerpoint.slideshow.macroEnabled.main+xml",
            b"application/vnd.openxmlformats-officedocument.presentationml.template.main+xml",
            b"application/vnd.ms-powerpoint.template.macroEnabled.main+xml",
        ),
    ),
}
# An OLE2 compound file (what Office writes for a password-protected DOCX, PPTX or XLSX: the
# package encrypted in its `EncryptedPackage` stream, MS-OFFCRYPTO §2.3.4) and that stream's name
# as its directory entry spells it
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")


def kind_of(name: str, mime: str | None = None) -> str | None:
    """'pdf', 'docx', 'pptx', 'xlsx', 'html', 'text', or None when inlet cannot read it. The
    macro-enabled, template and slide-show forms of a package (`.docm`, `.dotx`, `.xlsm`,
    `.xltx`, `.pptm`, `.ppsx`, `.potx`, ...: `PACKAGE_SUFFIXES`) are of its kind."""
    mime = (mime or mimetypes.guess_type(name)[0] or "").split(";")[0].strip().lower()
    if mime in _BY_MIME:
        return _BY_MIME[mime]
    suffix = PurePath(name).suffix.lower()
    if suffix in {".htm", ".html"}:
        return "html"
    if suffix == ".pdf":
        return "pdf"
    if suffix in _KIND_OF_SUFFIX:
        return _KIND_OF_SUFFIX[suffix]
    if mime.startswith("text/") or suffix in _TEXT_SUFFIXES:
        return "text"
    return None


def extract_text(data: bytes, name: str, mime: str | None = None) -> str:
    """Readable text of a file; `ItemError` when it is corrupt or of a kind inlet cannot read, and
    `UnpacksTooLargeError` (a skip by policy) for a DOCX, PPTX or XLSX file that unpacks past
    `UNPACK_ALLOWANCE`, decided before any part is inflated, or for a PDF, DOCX, PPTX or XLSX
    file locked with a password (`EncryptedError`, also a skip by policy). An empty file of a kind
    inlet reads has no text (""), whatever its kind: Explorer's "New Word Document" is 0 bytes, and
    no reader is asked to parse it. An Office owner file (`~$report.docx`, written beside a document
    while someone has it open) is no document (`NotADocumentError`, a skip by policy). A `charset`
    parameter of `mime` (a mail attachment's `text/plain; charset=ISO-2022-JP`) says how text is
    read (`decode`)."""
    kind = kind_of(name, mime)
    charset = _CHARSET_PARAMETER.search(mime or "")
    if kind is not None and not data:
        return ""
    try:
        if kind in _PACKAGES:
            _readable_package(data, name, kind)
            _within_unpack_limit(data, name)
            data = _as_main_form(data, kind)
        if kind == "text":
            text = _text(data, name, charset[1] if charset else None)
            return _without_front_matter(text)[1] if _is_markdown(name) else text
        if kind == "html":
            return html_to_text(_text(data, name, charset[1] if charset else None))
        if kind == "pdf":
            return _pdf(data, name)
        if kind == "docx":
            return _docx(data)
        if kind == "pptx":
            return _pptx(data)
        if kind == "xlsx":
            return _xlsx(data)
    except ItemError:
        raise
    except Exception as exc:  # the parsers raise a zoo of types on corrupt input
        raise ItemError(f"{name}: cannot read {kind or 'file'} ({type(exc).__name__}: {exc})") from exc
    raise ItemError(f"{name}: unsupported file type {mime or PurePath(name).suffix or '?'}")


_CHARSET_PARAMETER = re.compile(r""";\s*charset\s*=\s*["']?([^"';\s]+)""", re.I)


def _readable_package(data: bytes, name: str, kind: str) -> None:
    """A skip by policy for a DOCX, PPTX or XLSX file that holds no package inlet can open: one
    encrypted with a password (an OLE2 compound file holding an `EncryptedPackage` stream:
    `EncryptedError`), or an Office owner file (`~$` and the document's name, a few bytes naming
    who has it open, never a zip: `NotADocumentError`). Anything else that is no zip is damaged
    (the zip reader's error, as before)."""
    if data.startswith(_OLE2) and _ENCRYPTED_PACKAGE in data:
        raise EncryptedError(f"{name}: encrypted {kind.upper()} (password-protected): not read")
    if PurePath(name).name.startswith("~$") and not data.startswith(b"PK"):
        raise NotADocumentError(f"{name}: Office owner file (someone has the document open), not a document: not read")


def _as_main_form(data: bytes, kind: str) -> bytes:
    """The package `data` as its plain form (a `.docm`, `.dotx`, `.pptm`, `.ppsx` or `.potx` as a
    `.docx` or `.pptx`: only the main part's content type in `[Content_Types].xml` differs, which
    python-docx and python-pptx check); `data` itself when it is that form already, or an XLSX
    (openpyxl reads every form). Called after `_within_unpack_limit`: the copy is as bounded."""
    if kind not in _MAIN_PART:
        return data
    main, others = _MAIN_PART[kind]
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        try:
            types = package.read("[Content_Types].xml")
        except KeyError:
            return data  # no package at all: the reader says so
        if not any(other in types for other in others):
            return data
        for other in others:
            types = types.replace(other, main)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as plain:
            for info in package.infolist():
                part = types if info.filename == "[Content_Types].xml" else package.read(info)
                plain.writestr(info.filename, part)
    return out.getvalue()


def _within_unpack_limit(data: bytes, name: str) -> None:
    """`UnpacksTooLargeError` when the parts of the zip package `data` unpack to more than its own
    size plus `UNPACK_ALLOWANCE`, by the sizes its central directory declares: nothing is inflated
    to tell. Those sizes bound what the parsers read: Python's `zipfile` stops inflating a part at
    its declared size, and a part that holds more fails its CRC check (a damaged file, an error),
    so a directory that lies cannot make a read go past the limit."""
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        unpacked = sum(info.file_size for info in package.infolist())
    limit = len(data) + UNPACK_ALLOWANCE
    if unpacked > limit:
        raise UnpacksTooLargeError(
            f"{name}: unpacks to {_megabytes(unpacked)}, over the limit of {_megabytes(limit)} "
            f"(its own {_megabytes(len(data))} plus {_megabytes(UNPACK_ALLOWANCE)}): not read"
        )


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"


_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>|<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
# The first heading near the top: a Markdown `#` line, or an HTML <h1> (a README's centred title)
_HEADING = re.compile(r"^[ ]{0,3}#{1,6}[ \t]+(\S[^\n]*)$|<h1\b[^>]*>(.*?)</h1\s*>", re.M | re.S | re.I)
# The markup of a heading's text, as it renders: images and badges go, a link is its text, code
# and emphasis marks go (`_` only around words: snake_case stays)
_HEADING_MARKUP = [
    (re.compile(r"!\[[^\]\n]*\](?:\([^)\n]*\)|\[[^\]\n]*\])"), ""),
    (re.compile(r"\[([^\]\n]*)\](?:\([^)\n]*\)|\[[^\]\n]*\])"), r"\1"),
    (re.compile(r"<[^<>\n]+>"), ""),
    (re.compile(r"`+"), ""),
    (re.compile(r"(\*{1,3}|~~)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"(?<!\w)(_{1,3})(?=\S)(.+?)(?<=\S)\1(?!\w)"), r"\2"),
]
# YAML front matter at the top of a Markdown file: metadata, not text (its `title:` is the title).
# Only a block of `key: value` lines is front matter (with indented or `- ` continuation lines,
# comments and blank lines): a note, a slide file or an export that opens with a `---` rule and a
# sentence keeps that sentence.
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S | re.M)
_FRONT_MATTER_KEY = re.compile(r"[A-Za-z_][\w.-]*+[ \t]*+:(?:[ \t]|\Z)")
_FRONT_MATTER_MORE = re.compile(r"[ \t]|-(?:[ \t]|\Z)|#|\Z")  # a continuation, list item, comment or blank
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.M)


def _is_markdown(name: str) -> bool:
    return PurePath(name).suffix.lower() in (".md", ".markdown")


def _without_front_matter(text: str) -> tuple[str, str]:
    """(its front matter, the text after it); ("", text) when it has none: no `---` block at the
    top, or one that is not `key: value` lines (`_FRONT_MATTER_KEY`)."""
    found = _FRONT_MATTER.match(text)
    if found is None:
        return "", text
    lines = [line.rstrip("\r") for line in found[1].split("\n")]
    keyed = [line for line in lines if not _FRONT_MATTER_MORE.match(line)]
    if not all(_FRONT_MATTER_KEY.match(line) for line in keyed):
        return "", text
    first = next((line for line in lines if line.strip() and not line.startswith("#")), None)
    if first is not None and not _FRONT_MATTER_KEY.match(first):
        return "", text  # a list or an indented block is no mapping's start
    return found[1], text[found.end() :]


def document_title(data: bytes, name: str, text: str, mime: str | None = None) -> str | None:
    """The document's own title: HTML <title> (else <h1>), the PDF, DOCX, PPTX or XLSX metadata
    title (not one a program wrote: `_authored`; one a template wrote, `_from_template`, gives
    None), else its first heading near the top (a Markdown `#` line or an HTML `<h1>`), as it
    renders: no badges, images, link targets, code or emphasis marks; None when it has none
    (callers fall back to the path). A slide deck's or a workbook's headings are inlet's own
    section markers ("Slide 1", a sheet's name), never its title. A package that unpacks past
    `UNPACK_ALLOWANCE` is not opened: it has no metadata title."""
    kind = kind_of(name, mime)
    found: str | None = None
    try:
        if kind in _PACKAGES:
            _within_unpack_limit(data, name)
            data = _as_main_form(data, kind)
        if kind == "html":
            match = _HTML_TITLE.search(decode(data[:200_000]))
            # <title> is text up to </title> (RCDATA: `Why <div> beats <table>` is its text); an
            # <h1> holds markup, of which only the text counts
            raw = None if match is None else match[1] if match[1] is not None else re.sub(r"<[^>]+>", "", match[2])
            found = None if raw is None else html_lib.unescape(_bare_ampersands_escaped(raw))
        elif kind == "pdf":
            from pypdf import PdfReader

            metadata = PdfReader(io.BytesIO(data)).metadata
            found = metadata.title if metadata else None
        elif kind == "docx":
            import docx

            found = docx.Document(io.BytesIO(data)).core_properties.title
        elif kind == "pptx":
            from pptx import Presentation

            found = Presentation(io.BytesIO(data)).core_properties.title
        elif kind == "xlsx":
            from openpyxl import load_workbook

            found = load_workbook(io.BytesIO(data), read_only=True).properties.title
    except Exception:  # a title is a nicety: a file whose text was read keeps it without one
        log.debug("no metadata title in %s", name, exc_info=True)
    found = " ".join((found or "").split())
    if _from_template(found, name):
        return None  # its first heading is the template's too ("Memo"): the file's name tells more
    found = _authored(found)
    if found:
        return found
    if kind in ("pptx", "xlsx"):
        return None
    if kind == "text" and _is_markdown(name):
        matter = _without_front_matter(decode(data[:200_000]))[0]
        title = _FRONT_MATTER_TITLE.search(matter)
        if title:
            return title[1].strip().strip("\"'").strip() or None
    heading = _HEADING.search("\n".join(text.splitlines()[:20]))
    return _heading_text(heading[1].rstrip().rstrip("#") if heading[1] else heading[2]) if heading else None


# Titles a program writes, not a person: an app's defaults ("PowerPoint Presentation", "Document1",
# "Untitled Document"), a PDF printer's "Microsoft Word - " before the name of what it printed
_DEFAULT_TITLE = re.compile(
    r"(?:microsoft )?(?:word|excel|powerpoint)(?: document| presentation| workbook)?"
    r"|(?:presentation|document|book|sheet)\s*\d*|untitled(?: document| presentation| spreadsheet)?\s*\d*"
    r"|slide \d+|title|(?:click to )?add (?:a )?title",
    re.I,
)
_PRINTED_FROM = re.compile(
    r"^microsoft (?:office )?(?:word|excel|powerpoint) - (.*?)(?:\.(?:docx?|xlsx?|pptx?|rtf))?$", re.I
)
_TEMPLATE_WORD = re.compile(r"\btemplate\b", re.I)
_TEMPLATE_SUFFIXES = (".dotx", ".dotm", ".potx", ".potm", ".xltx", ".xltm")


def _authored(title: str) -> str:
    """A metadata title as its author's, "" when a program wrote it: an app's default
    (`_DEFAULT_TITLE`), "Microsoft Word - Document1" (a PDF printer's; the printed file's name is
    kept when it is no default: "Microsoft Word - Q3 budget.docx" is "Q3 budget"). Such a title
    would stand for the file's name in every result, the same for unrelated documents."""
    printed = _PRINTED_FROM.match(title)
    if printed:
        title = printed[1].strip()
    return "" if _DEFAULT_TITLE.fullmatch(title) else title


def _from_template(title: str, name: str) -> bool:
    """Whether a metadata title names a template in a document made from it ("ACME Memo Template
    v3" in every memo), not in the template itself (`.dotx`, `.potx`, `.xltx`, ...)."""
    return bool(_TEMPLATE_WORD.search(title)) and not name.lower().endswith(_TEMPLATE_SUFFIXES)


def _heading_text(heading: str) -> str | None:
    """A heading's text as it renders (`_HEADING_MARKUP`), on one line; None when nothing is left."""
    for markup, kept in _HEADING_MARKUP:
        heading = markup.sub(kept, heading)
    return " ".join(html_lib.unescape(heading).split()) or None


# A charset the bytes declare (HTML Standard "prescan"; XML 1.0 §4.3.3): an XML declaration at the
# start, a <meta charset> or <meta http-equiv content="...; charset=..."> in the first 1024 bytes
_XML_DECLARED = re.compile(rb"""\A<\?xml[^>]{0,200}?\bencoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_META_DECLARED = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.I)
_DETECT_SAMPLE = 262_144  # bytes the encoding detector reads: enough to tell, fast on any file
_DETECT_MIN = 8  # fewer non-ASCII bytes tell the detector nothing ("\x80100" is "€100", not "А100")
_MOSTLY_UTF8 = 3  # valid non-ASCII UTF-8 characters needed per stray byte (or cut sequence) to read it as UTF-8


def decode(data: bytes, charset: str | None = None) -> str:
    """Text of bytes in whatever encoding they are, as a browser or editor shows them: UTF-16 or
    UTF-8 with its byte order mark; the `charset` label the bytes came with (a MIME part's:
    `in_charset`) when they are text in it; ISO-2022-JP by its shift sequences (`ESC $ B`, 7-bit
    Japanese mail and notes); UTF-16 without a byte order mark (`_utf16_without_bom`); UTF-8; the
    charset the text declares (an XML declaration, an HTML `<meta charset>`); UTF-8 but for a few
    stray bytes (each read alone, as Windows-1252: the rest of the text is not turned into mojibake
    for one pasted dash); else Windows-1252 when the text reads as a Western language, else the
    legacy encoding `charset_normalizer` detects (GBK, Shift_JIS, EUC-KR, Windows-1251, ...: `_legacy`),
    else Latin-1, which reads any bytes: see `_text` for refusing binary ones."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if charset and (labelled := in_charset(data, charset)) is not None:
        return labelled.removeprefix("\ufeff")
    shifted = _ISO2022_SHIFT.search(data) and data.isascii()
    read = _first_reading(data, ("iso2022_jp", "whatwg_iso2022_jp", "iso2022_jp_2") if shifted else ())
    read = read if read is not None else _utf16_without_bom(data)
    read = read if read is not None else _first_reading(data, ("utf-8-sig", _declared(data)))
    read = read if read is not None else _mostly_utf8(data)
    read = read if read is not None else _first_reading(data, (_legacy(data), "cp1252"))
    return read if read is not None else data.decode("latin-1")


def _first_reading(data: bytes, names: tuple[str | None, ...]) -> str | None:
    """`data` in the first codec of `names` (None names none) it is text in; None when in none."""
    for codec in names:
        if codec is not None:
            try:
                return data.decode(codec)
            except (UnicodeError, LookupError):  # no text in it, or (`_legacy`'s guess) no codec for text
                continue
    return None


# ISO-2022-JP's switch to JIS X 0208 (`ESC $ B`, `ESC $ @`) or JIS X 0212 (`ESC $ ( D`)
_ISO2022_SHIFT = re.compile(rb"\x1b\$(?:[@B]|\(D)")
_UTF16_NULS = 0.4  # share of one byte position that is NUL in UTF-16 text mostly of Latin letters
_UTF16_OTHER_NULS = 0.05  # and of the other: NUL in text is a U+0000 or a U+xx00, rare


def _utf16_without_bom(data: bytes) -> str | None:
    """`data` as UTF-16 without a byte order mark (what `iconv -t UTF-16LE`, `bcp -w` and
    `Encoding.Unicode.GetBytes` write), when one byte of each pair is NUL far more often than the
    other (the high byte of Latin text) and it decodes as UTF-16 in that order; else None. Text with
    few Latin letters cannot be told this way: it is left to the other guesses."""
    if len(data) < 4 or len(data) % 2 or b"\x00" not in data:
        return None
    sample = data[:_DETECT_SAMPLE]
    pairs = len(sample) // 2
    even, odd = sample[0::2].count(0) / pairs, sample[1::2].count(0) / pairs
    for nuls, other, codec in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if nuls >= _UTF16_NULS and other <= _UTF16_OTHER_NULS:
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                return None
    return None


# Text codecs in Python's registry that read no charset: one refuses every byte, the others turn
# escapes or ASCII runs into other characters (`\x41`, "bcher-kva")
_NO_CHARSET = frozenset({"undefined", "punycode", "idna", "unicode-escape", "raw-unicode-escape"})


def codec_of(label: str) -> str | None:
    """The codec a charset label names, as browsers read it (`charsets.WHATWG_LABELS`, else Python's
    codec registry); None if unknown, or if it names no text encoding (`charset=zlib`, `base64`,
    `rot13`: Python's bytes-to-bytes and text-to-text codecs) or no charset (`_NO_CHARSET`)."""
    label = label.strip().strip("\"'").strip().lower()
    try:
        info = codecs.lookup(WHATWG_LABELS.get(label, label))
    except (LookupError, ValueError):  # ValueError: a label with a NUL
        return None
    if not info._is_text_encoding or info.name in _NO_CHARSET:
        return None
    return AS_BROWSERS_READ.get(info.name, info.name)


def in_charset(data: bytes, label: str) -> str | None:
    """`data` read as its charset label says (a MIME part's `charset`, read as mail clients and
    browsers read it: `codec_of`); None when the label is unknown or the bytes are no text in it.
    A label read as Windows-1252 (us-ascii, iso-8859-1, windows-1252) is the one commonly wrong:
    bytes that are valid UTF-8 holding a multi-byte character are UTF-8 (Latin-1 text almost never
    forms such sequences, "Ã¼"; a web form or script that declares Latin-1 and sends UTF-8 does),
    else Windows-1252, which reads any byte."""
    codec = codec_of(label)
    if codec is None:
        return None
    if codec == "cp1252":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return windows_1252(data)
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError):  # no text in it; a codec that cannot decode: detection reads it
        return None


# Windows-1252's characters for the bytes 0x80-0x9F; the five it leaves undefined stay as Latin-1 reads them
_C1_AS_1252 = {n: bytes([n]).decode("cp1252", "ignore") or chr(n) for n in range(0x80, 0xA0)}


def windows_1252(data: bytes) -> str:
    """Bytes as the WHATWG Encoding Standard reads windows-1252: every byte is a character."""
    return data.decode("latin-1").translate(_C1_AS_1252)


def _declared(data: bytes) -> str | None:
    """The codec of the charset `data` declares (an XML declaration, an HTML `<meta>` near the top)."""
    found = _XML_DECLARED.match(data) or _META_DECLARED.search(data, 0, 1024)
    codec = codec_of(found[1].decode("ascii")) if found else None
    return None if codec in (None, "utf-16", "utf-16-le", "utf-16-be", "utf-32") else codec


# What `surrogateescape` makes of bytes that are no UTF-8: a cut-off multi-byte sequence, else one byte
_STRAY = re.compile("[\udcc2-\udcf4][\udc80-\udcbf]+|[\udc80-\udcff]")


def _mostly_utf8(data: bytes) -> str | None:
    """`data` as UTF-8 when its invalid bytes are few against its valid non-ASCII characters, each
    stray byte read as Windows-1252 and each cut-off multi-byte sequence as U+FFFD; else None."""
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    escaped = len(text) - len(text.encode("utf-8", "ignore").decode("utf-8"))  # one per invalid byte
    valid = len(text) - escaped - len(text.encode("ascii", "ignore"))
    if valid < _MOSTLY_UTF8 * -(-escaped // 3):  # too many even if each were a cut 3-byte sequence
        return None
    if valid < _MOSTLY_UTF8 * sum(1 for _ in _STRAY.finditer(text)):
        return None
    return _STRAY.sub(_stray_read, text)


def _stray_read(found: re.Match[str]) -> str:
    if len(found[0]) > 1:
        return "\ufffd"
    return bytes([ord(found[0]) - 0xDC00]).decode("cp1252", "replace")


# Legacy code pages by how much text is written in them (the Windows code page of a script first):
# the tie-break between pages the detector scores alike
_PREVALENCE = {
    name: 2 * rank  # room for a page moved between two
    for rank, name in enumerate(
        "cp1252 cp1250 iso8859_2 cp1251 koi8_r gb18030 gbk gb2312 big5 cp932 shift_jis euc_jp cp949 euc_kr "
        "cp1253 cp1254 cp1255 cp1256 cp1257 cp1258 cp874 tis_620 iso8859_15 iso8859_5 iso8859_7 iso8859_9 "
        "mac_roman".split()
    )
}
_TIE = 0.01  # detector chaos within this of the best: as clean
_TIE_COHERENCE = 0.05  # and coherence within this of the best among those: as likely
# Readings whose chaos is within this of the best are compared by their unlikely characters first:
# the detector scores Shift_JIS read as Korean (rare Hangul syllables) cleaner than as Japanese
_PLAUSIBLE = 0.1
# IBM mainframe code pages: any run of bytes over 0x80 reads as Latin letters in them, and no text
# on a workplace's disks or in its mail is in one (a mainframe's export is converted on transfer)
_EBCDIC = frozenset("cp037 cp273 cp424 cp500 cp875 cp1026 cp1140".split())
_UNLIKELY_TIE = 0.05  # share of unlikely characters within this of the fewest: as likely
_JAPANESE_CODECS = ("cp932", "shift_jis", "euc_j", "iso2022_jp")


def _unlikely_share(text: str, codec: str) -> float:
    """The share of the non-ASCII characters of a reading of bytes in `codec` that text in its
    language hardly holds (`_unlikely`): mojibake is made of them."""
    japanese = codec.startswith(_JAPANESE_CODECS)
    wide = [c for c in text if c >= "\x80"]
    if not wide:
        return 0.0
    return (sum(_unlikely(c, japanese) for c in wide) + len(_THAI_MARK_ALONE.findall(text))) / len(wide)


# A Thai vowel or tone mark written above or below a letter, where no letter is before it
_THAI_MARK_ALONE = re.compile(r"(?<![\u0e01-\u0e2e\u0e31-\u0e3a\u0e47-\u0e4e])[\u0e31\u0e34-\u0e3a\u0e47-\u0e4e]")


@functools.lru_cache(maxsize=65536)
def _unlikely(char: str, japanese: bool) -> bool:
    """Whether a character is one text hardly holds, as a reading of legacy bytes: a control,
    private-use or unassigned code point; a Hangul syllable outside KS X 1001's 2,350 (the
    extension of Windows-949 that Shift_JIS kana and kanji decode into) or a lone Hangul letter;
    kana outside a Japanese code page's reading, or half-width kana; a Han character in none of the
    national sets of common characters (GB 2312, JIS X 0208, Big5's level 1); Thai digits and
    signs, Arabic presentation forms, CJK vertical and small forms (what code pages' corners hold)."""
    code = ord(char)
    if unicodedata.category(char) in ("Cc", "Co", "Cn", "Cs") and char not in "\x85":
        return True
    if 0xAC00 <= code <= 0xD7A3:
        return len(char.encode("euc_kr")) != 2  # Python spells the others as 8-byte jamo sequences
    if 0x3040 <= code <= 0x30FF:
        return not japanese
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF:
        return not (_encodes(char, "gb2312") or _encodes(char, "euc_jp") or _big5_level_1(char))
    return (
        0x3131 <= code <= 0x318E
        or 0xFF61 <= code <= 0xFF9F
        or 0x0E4F <= code <= 0x0E5B
        or 0xFB50 <= code <= 0xFDFF
        or 0xFE70 <= code <= 0xFEFF
        or 0xFE10 <= code <= 0xFE6F
    )


def _encodes(char: str, codec: str) -> bool:
    try:
        char.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def _big5_level_1(char: str) -> bool:
    """Whether a Han character is among Big5's 5,401 frequent ones (lead bytes 0xA4-0xC6)."""
    try:
        lead = char.encode("big5")[0]
    except UnicodeEncodeError:
        return False
    return 0xA4 <= lead <= 0xC6


# EUC-JP's codes Python's `euc_jp` lacks and Windows (and the WHATWG decoder) reads: NEC's row 13
# (①, Ⅲ, ㈱) and the NEC-selected IBM extensions (rows 89-92)
_EUC_JP_NEC = re.compile(rb"[\xad\xf9-\xfc][\xa1-\xfe]")


def _as_detected(sample: bytes) -> bytes:
    """The bytes the detector is shown: EUC-JP holding NEC's characters (which its `euc_jp` refuses,
    so it names another encoding) with those shown as an ideographic space; any other bytes as they
    are. The text is then read whole by `codec_of`'s EUC-JP decoder, which reads them."""
    if not _EUC_JP_NEC.search(sample) or _first_reading(sample, ("euc_jp",)) is not None:
        return sample
    if _first_reading(sample, ("whatwg_euc_jp",)) is None:
        return sample
    return _EUC_JP_NEC.sub(b"\xa1\xa1", sample)


def _legacy(data: bytes) -> str | None:
    """The legacy encoding of bytes that are not UTF-8: Windows-1252 when they read as Western text
    in it or hold too few non-ASCII bytes to tell, else what `charset_normalizer` detects (no
    mainframe page; EUC-JP read as browsers read it, NEC's characters too: `_as_detected`): of its
    readings about as clean (`_PLAUSIBLE`), those with the fewest unlikely characters
    (`_unlikely_share`), then the cleanest, the most coherent, the most written (`_PREVALENCE`);
    None when it finds none (binary bytes, say)."""
    from charset_normalizer import from_bytes

    if b"\x00" in data:  # no legacy text holds NUL: binary (the detector would try UTF-16 and UTF-32)
        return None
    sample = data[:_DETECT_SAMPLE]
    if len(sample) < len(data):
        sample = sample[: sample.rfind(b"\n") + 1 or len(sample)]  # no character cut in two
    sample = _as_detected(sample)
    if len(sample.translate(None, bytes(range(128)))) < _DETECT_MIN or (
        from_bytes(sample, cp_isolation=["cp1252"]).best() is not None
    ):
        return "cp1252"  # the detector would name a similar code page for short Western text
    found = [
        m for m in from_bytes(sample) if not m.encoding.startswith(("utf_16", "utf_32")) and m.encoding not in _EBCDIC
    ]
    if not found:
        return None
    least = min(m.chaos for m in found)
    plausible = [m for m in found if m.chaos <= least + _PLAUSIBLE]
    if len(plausible) > 1:  # the reading made of the characters its language writes
        unlikely = [_unlikely_share(str(m), m.encoding) for m in plausible]
        plausible = [m for m, share in zip(plausible, unlikely) if share <= min(unlikely) + _UNLIKELY_TIE]
        least = min(m.chaos for m in plausible)
    clean = [m for m in plausible if m.chaos <= least + _TIE]
    most = max(m.coherence for m in clean)
    tied = [m for m in clean if m.coherence >= most - _TIE_COHERENCE]
    # the detector scores code pages of one script alike (Polish reads as well in ISO-8859-10 as in
    # ISO-8859-2): among those it cannot tell apart, the one people write in; a text without a byte
    # of 0x80-0x9F is no Windows page's (its š, ž, ś, ź are there), so ISO-8859-2 before Windows-1250
    rank = dict(_PREVALENCE)
    if not any(0x80 <= byte <= 0x9F for byte in sample):
        rank["cp1250"] = rank["iso8859_2"] + 1
    codec = codec_of(min(tied, key=lambda m: rank.get(m.encoding, 2 * len(rank))).encoding)
    if codec in _JIS_X_0213 and _first_reading(sample, ("whatwg_euc_jp",)) is not None:
        return "whatwg_euc_jp"  # EUC-JP as browsers read it: rows 89-92 are IBM's kanji, not JIS X 0213's
    return codec


_JIS_X_0213 = frozenset({"euc_jis_2004", "euc_jisx0213"})  # the detector's name for EUC-JP text


# Control characters other than tab, newline, form feed, carriage return and escape (C0, DEL and
# C1): text saved from a terminal (a log with colours) is still text, its escape sequences removed.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_MAX_CONTROL_SHARE = 0.1  # text has next to none; random bytes read as Latin-1 have about a quarter
# ECMA-48 escape sequences: CSI (colours, cursor moves: ESC [ ... m), OSC (titles, links) and DCS,
# SOS, PM, APC strings up to their terminator, and the two-character escapes
_TERMINAL_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*+[ -/]*+[@-~]|[\]PX^_][^\x07\x1b\n]{0,4096}(?:\x07|\x1b\\)|[ -/]*+[0-~])"
)


def _text(data: bytes, name: str, charset: str | None = None) -> str:
    """`decode(data, charset)` without terminal escape sequences (`without_terminal_escapes`),
    refused (`NotTextError`) when it holds a NUL or too many control characters."""
    text = without_terminal_escapes(decode(data, charset))
    if looks_binary(text):
        raise NotTextError(f"{name}: binary content, not text")
    return text


def without_terminal_escapes(text: str) -> str:
    """`text` without the escape sequences a terminal renders as colours, cursor moves or window
    titles (`\\x1b[31mTIMEOUT\\x1b[0m` is `TIMEOUT`), as a log viewer shows it."""
    return _TERMINAL_ESCAPE.sub("", text) if "\x1b" in text else text


def looks_binary(text: str) -> bool:
    """Whether decoded text was never text: it holds a NUL or too many control characters."""
    return "\x00" in text or len(_CONTROL.findall(text)) > _MAX_CONTROL_SHARE * len(text)


_CELL_END = re.compile(r"(</t[dh]\s*>)", re.I)
_EMOJI = re.compile(r"<emoji\b[^>]*?\balt=\"([^\"]*)\"[^>]*>(?:\s*</emoji>)?", re.I)  # Teams: the emoji itself
# An element a mail hides from its reader (a newsletter's preheader): up to its first closing tag.
_HIDDEN = re.compile(
    r"<(div|span|p|td|table)\b[^<>]{0,2000}?\bstyle\s*=\s*[\"'][^\"'<>]{0,2000}?"
    r"(?:display\s*:\s*none|mso-hide\s*:\s*all)[^<>]{0,2000}>",
    re.I,
)


# Elements browsers render as blocks that the converter (whose list predates HTML5) runs into the
# words around them: read as the <div> they render as (HTML Living Standard, Rendering §15.3.3)
_BLOCKS = re.compile(
    r"<(/?)(?:address|article|aside|center|details|dialog|figcaption|figure|footer|header|hgroup|legend|main"
    r"|nav|noscript|search|section|summary)(?=[\s/>])",
    re.I,
)
_INERT = re.compile(r"<(template)\b[^<>]{0,2000}>", re.I)  # content no browser shows: not text


def without_elements(html: str, opener: re.Pattern[str], closer: Callable[[re.Match[str]], re.Pattern[str]]) -> str:
    """`html` without each element `opener` finds, up to the end of what `closer(its match)` finds
    after it, in one pass forward (a lazy pattern per element would scan to the end for each one that
    never closes: minutes for a few hundred KB). An opener that never closes is dropped alone (what
    follows it is text), and its closer is not searched for again."""
    out, at, unclosed = [], 0, set()
    while (found := opener.search(html, at)) is not None:
        out.append(html[at : found.start()] + " ")
        ending = closer(found)
        end = None if ending.pattern in unclosed else ending.search(html, found.end())
        if end is None:
            unclosed.add(ending.pattern)
        at = end.end() if end is not None else found.end()
    return "".join(out) + html[at:]


def _closing_tag(opener: re.Match[str]) -> re.Pattern[str]:
    return re.compile(rf"</{opener[1]}\s*>", re.I)


# What of HTML never becomes text: comments, <script> and <style> elements, data: URIs (inline images)
_NOT_TEXT = re.compile(r"<!--|<(script|style)\b", re.I)
_DATA_URI = re.compile(r"""(=\s*)(["'])data:[^"']*\2""", re.I)
_COMMENT_END = re.compile(r"-->")
_PARTIAL_ENTITY = re.compile(r"&#?\w{0,40}\Z")


def _not_text_end(opener: re.Match[str]) -> re.Pattern[str]:
    return _closing_tag(opener) if opener[1] else _COMMENT_END


def html_prefix(html: str, limit: int) -> tuple[str, bool]:
    """(HTML to convert, whether any of `html` was left out): `html` itself when it is at most
    `limit` characters; else, less what never becomes text (hidden elements, comments, scripts,
    styles, data: URIs), its first `limit` characters at most, cut before a tag (quoted values read
    as such: `alt='>'` ends none), a CDATA section or an entity the cut would split. Linear in
    `len(html)`: a bound on what `html_to_text` is given."""
    if len(html) <= limit:
        return html, False
    lean = without_elements(without_elements(html, _HIDDEN, _closing_tag), _NOT_TEXT, _not_text_end)
    lean = _DATA_URI.sub(r"\1\2\2", lean)
    if len(lean) <= limit:
        return lean, False
    cut = next((start for start, end in _markup(lean) if start >= limit or (end or 0) > limit), limit)
    return _PARTIAL_ENTITY.sub("", lean[: min(cut, limit)]), True


# Markup the HTML parser reads whole from a `<`: a start tag (a quoted value after `=` may hold `<`
# and `>`), an end tag, a declaration, a processing instruction; comments and CDATA sections end
# where `_MARKUP_CLOSERS` finds. Possessive throughout: a failed match costs what it read, once.
_TAG_LIKE = re.compile(r"""<[a-zA-Z](?:=\s*+"[^"]*+"|=\s*+'[^']*+'|[^<>=]++|=)*+>|<[/!?][^<>]*+>""")
_MARKUP_CLOSERS = {"<!--": re.compile(r"--\s*>"), "<![cdata[": re.compile(r"]\s*]\s*>")}


def _markup(html: str) -> Iterator[tuple[int, int | None]]:
    """(start, end) of each `<` of `html` in order, end None when no complete markup starts there
    (the parser reads it as text). Linear: complete markup is skipped whole, and a comment or CDATA
    section found unclosed is not searched for again."""
    unclosed: set[str] = set()
    at = html.find("<")
    while at != -1:
        opener = next((o for o in _MARKUP_CLOSERS if html[at : at + len(o)].lower() == o), None)
        if opener is None:
            found = _TAG_LIKE.match(html, at)
            end = found.end() if found else None
        elif opener in unclosed or (close := _MARKUP_CLOSERS[opener].search(html, at + len(opener))) is None:
            unclosed.add(opener)
            end = None
        else:
            end = close.end()
        yield at, end
        at = html.find("<", end if end is not None else at + 1)


def _stray_brackets_escaped(html: str) -> str:
    """`html` with each `<` that starts no complete markup as `&lt;`: the text the parser would make
    of it, without the parser's search to the end of the input for each one (quadratic)."""
    out, at = [], 0
    for start, end in _markup(html):
        if end is None:
            out.append(html[at:start] + "&lt;")
            at = start + 1
    return "".join(out) + html[at:]


# A character reference as the HTML Standard reads one in an attribute value: `&#` and a digit,
# `&name;`, or a name a browser also reads without `;` (`&copy`) when no letter, digit or `=`
# follows it. inlet reads text by the same rule (where a browser would make "®ion=" of
# "&region=" in text): an `&` that starts none is the character itself ("R&D", "?a=1&env=prod").
_AMPERSAND = re.compile(r"&(?:#[0-9]|#[xX][0-9a-fA-F]|([A-Za-z][A-Za-z0-9]*+)([;=]?))?")


def _bare_ampersands_escaped(html: str) -> str:
    """`html` with each `&` that starts no character reference as `&amp;`: the parser would
    otherwise read "R&D" as a reference to an unknown "D" (written back as "R&D;") and an `href`'s
    "&region=" as "®ion="."""

    def escaped(found: re.Match[str]) -> str:
        name, end = found[1], found[2]
        if name is None:
            return found[0] if len(found[0]) > 1 else "&amp;"
        if (end == ";" and name + ";" in _NAMED_REFERENCES) or (not end and name in _NAMED_REFERENCES):
            return found[0]
        return "&amp;" + found[0][1:]

    return _AMPERSAND.sub(escaped, html)


# What the converter writes of HTML, read back in linear time (no pattern rescans to the end of the
# text from each `[`, `<` or blank line: a page of them would take minutes)
_LINK_END = re.compile(r'\]\(<([^<>\s]+)>(?: "[^"\n]{0,2000}")?\)')  # [text](<url>), or with a "title" (a tooltip)
_AUTOLINK = re.compile(r"<((?:https?|mailto|ftp):[^<>\s]+)>")
_URL_ESCAPED = re.compile(r"\\([\\\[\]()])")  # the converter's escapes in a link's url: `\(` is `(`
_ESCAPED = re.compile(r"^([^\S\n]*\d+)\\(\.)|^([^\S\n]*)\\([-+])|\\(\\)(?=[\\`*_{}\[\]()#+\-.!])", re.M)


def _links_as_text(out: str) -> str:
    """Each `[text](<url>)` as "text (url)", or the url alone when the text is none or the url; the
    text is from the first `[` after the last `]` or line end before it."""
    parts, at = [], 0
    for end in _LINK_END.finditer(out):
        after = out.rfind("]", at, end.start()) + 1 or at
        start = out.find("[", max(after, out.rfind("\n", after, end.start()) + 1), end.start())
        if start == -1:
            continue
        text, url = out[start + 1 : end.start()], _URL_ESCAPED.sub(r"\1", end[1])
        parts.append(out[at:start] + (url if text.strip() in ("", url) else f"{text} ({url})"))
        at = end.end()
    return "".join(parts) + out[at:]


# A no-break space reads as a space (as the converter writes one outside <pre>), and direction marks
# (`&lrm;`, `&rlm;`) are left out: invisible, they would split the words around them.
_SPACES_AND_MARKS = str.maketrans({"\u00a0": " ", "\u200e": None, "\u200f": None})


def html_to_text(html: str) -> str:
    """HTML as plain text: blocks and list items on their lines, headings kept as `#` lines (the
    chunker splits there), a table's cells apart, links as "text (url)", Teams' `<emoji>` as the
    emoji, no images, no emphasis marks, nothing hidden with `display: none` nor a `<template>`'s
    inert content, HTML5's blocks (`<section>`, `<header>`, `<summary>` ...) as blocks, and none of the
    converter's Markdown escapes ("1\\." is "1.", a link's url as its `href` holds it). A character
    reference is its character (`&uuml;` is "ü", `&copy;` "©"); an `&` or a `<` that starts no
    reference or no complete markup is text ("R&D", "?a=1&env=prod"); and the time taken is linear
    in `len(html)` whatever its brackets."""
    import html2text

    converter = html2text.HTML2Text()
    converter.body_width = 0  # no hard wrapping: the chunker decides where lines break
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_tables = True  # cells as text, a row per line: no `|---|` rules in passages
    converter.protect_links = True
    converter.unicode_snob = True  # a character reference is its character: "M&uuml;ller" is "Müller"
    html = without_elements(_bare_ampersands_escaped(_stray_brackets_escaped(html)), _HIDDEN, _closing_tag)
    html = _BLOCKS.sub(r"<\1div", without_elements(html, _INERT, _closing_tag))
    out = converter.handle(_CELL_END.sub(r" \1", _EMOJI.sub(r"\1", html))).translate(_SPACES_AND_MARKS)
    out = _AUTOLINK.sub(r"\1", _links_as_text(out))
    out = _ESCAPED.sub(lambda m: "".join(g for g in m.groups() if g is not None), out)
    out = re.sub(r"(?<=\S) {2,}(?=\S)", " ", out)  # where an image or an empty cell was
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in out.split("\n"))).strip("\n")
    return textwrap.dedent(text)  # a list or <pre> first keeps its lines' indents relative to each other


def _pdf(data: bytes, name: str) -> str:
    """The pages' text layer, pages apart, a word hyphenated at a line end joined (`_dehyphenated`).
    The reader keeps what it inflated, and a PDF says nothing of its streams' sizes unpacked: the
    pages' contents are inflated (pypdf bounds each page's to 75 MB) and counted first, and past
    the file's own size plus `UNPACK_ALLOWANCE` the file is refused (`UnpacksTooLargeError`)
    before another page is inflated or any is parsed. Then the values filled into its form's text
    and choice fields, each as "field: value" (a value the pages already show is not repeated),
    then its review comments (`_pdf_comments`: "Comment (author): text"). An
    encrypted PDF is read when its user password is empty (anyone may open it), else refused
    by policy (`EncryptedError`)."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise EncryptedError(f"{name}: encrypted PDF (password-protected): not read")
    limit, unpacked = len(data) + UNPACK_ALLOWANCE, 0
    for number, page in enumerate(reader.pages, 1):
        contents = page.get_contents()  # inflated once: the text's extraction below reads it again
        unpacked += len(contents.get_data()) if contents is not None else 0
        if unpacked > limit:
            raise UnpacksTooLargeError(
                f"{name}: the contents of its first {number} pages unpack to {_megabytes(unpacked)}, over the "
                f"limit of {_megabytes(limit)} (its own {_megabytes(len(data))} plus "
                f"{_megabytes(UNPACK_ALLOWANCE)}): not read"
            )
    pages = [_dehyphenated((page.extract_text() or "").strip()) for page in reader.pages]
    shown = "\n".join(pages)
    filled = [line for line in _pdf_form_values(reader) if line.split(": ", 1)[1] not in shown]
    comments = list(_pdf_comments(reader))
    return "\n\n".join([p for p in pages if p] + (["\n".join(filled)] if filled else []) + comments)


# Annotations that hold no comment of a reviewer's: links, form fields, the pop-up windows that
# show another annotation's text (its /Contents are the parent's), and print marks
_NOT_COMMENTS = frozenset({"/Link", "/Widget", "/Popup", "/PrinterMark", "/TrapNet", "/Watermark", "/3D", "/Screen"})


def _pdf_comments(reader: Any) -> Iterator[str]:
    """The review comments of a PDF's pages (sticky notes, text boxes, the notes on highlights and
    other markup: their `/Contents`), each as "Comment (author): text", a reply as "Reply
    (author): text", in page order, as a DOCX's comments are read."""
    for page in reader.pages:
        try:
            annotations = page.get("/Annots")
            annotations = annotations.get_object() if annotations is not None else []
        except Exception:  # a damaged annotation array: the page's text was read, its comments are lost
            log.debug("unreadable annotations in a PDF", exc_info=True)
            continue
        for reference in annotations or []:
            try:
                annotation = reference.get_object()
                if annotation.get("/Subtype") in _NOT_COMMENTS:
                    continue
                text = " ".join(str(annotation.get("/Contents") or "").split())
                author = " ".join(str(annotation.get("/T") or "").split())
            except Exception:  # one damaged annotation: the others are read
                log.debug("unreadable annotation in a PDF", exc_info=True)
                continue
            if text:
                lead = "Reply" if "/IRT" in annotation else "Comment"
                yield f"{lead} ({author}): {text}" if author else f"{lead}: {text}"


def _pdf_form_values(reader: Any) -> Iterator[str]:
    """ "field: value" of each text or choice field of a PDF's form that holds a value, by the name
    a viewer shows for it (its tooltip, else its own name)."""
    for qualified, field in (reader.get_fields() or {}).items():
        if field.get("/FT") not in ("/Tx", "/Ch"):
            continue  # buttons (check boxes, radio buttons) and signatures hold no text
        value = field.get("/V")
        values = value if isinstance(value, list) else [value]
        text = ", ".join(" ".join(str(v).split()) for v in values if v is not None and str(v).strip())
        if text:
            label = " ".join(str(field.get("/TU") or field.get("/T") or qualified).split())
            yield f"{label}: {text}"


# A word broken at a line end with a hyphen (or a soft hyphen, or U+2010), its rest starting the next line
# (tried at word starts only, possessive: linear in the text's length however long its words)
_LINE_END_HYPHEN = re.compile(r"(?<![^\W\d_])([^\W\d_]++)[-\u00ad\u2010][ \t]*\n[ \t]*([^\W\d_]++)[ \t]*\n?")
_HYPHENATED = re.compile(r"(?<![^\W\d_])[^\W\d_]++-[^\W\d_]++")


# First parts after which a line-end hyphen is a compound's own (self-service, non-disclosure)
_COMPOUND_HEADS = frozenset("self non anti semi multi cross well half".split())


def _dehyphenated(text: str) -> str:
    """`text` with each word a typesetter broke at a line end ("perfor-" / "mance review") joined
    on the first line ("performance" / "review"), as the page reads. Only when its rest starts in
    lower case; the hyphen is kept where it is likely the compound's own: the text writes the
    compound with one elsewhere ("well-known"), or not the joined word while it has the rest as a
    word of its own ("service" beside "self-" / "service"), or the first part is one letter
    ("e-mail": no typesetter breaks after one) or a prefix of compounds ("self", "non")."""
    compounds = {word.lower() for word in _HYPHENATED.findall(text)}
    unbroken = _LINE_END_HYPHEN.sub(" ", text)  # the words outside the breaks
    words = {word.lower() for word in re.findall(r"[^\W\d_]+", unbroken)}

    def joined(found: re.Match[str]) -> str:
        head, rest = found[1], found[2]
        if not rest[0].islower():
            return found[0]
        lower = f"{head}{rest}".lower()
        own = (
            f"{head}-{rest}".lower() in compounds
            or (lower not in words and rest.lower() in words)
            or len(head) == 1
            or head.lower() in _COMPOUND_HEADS
        )
        return (f"{head}-{rest}" if own else head + rest) + "\n"

    return _LINE_END_HYPHEN.sub(joined, text).rstrip("\n")


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
# WordprocessingML elements whose content shows as it is: content controls, custom XML, tracked
# insertions and moves (until rejected, Word shows and counts them), links, fields, smart tags.
# Anything else a paragraph holds besides runs (tracked deletions, properties, bookmarks) is no text.
_DOCX_SHOWN = {
    f"{_W}{tag}" for tag in "sdt sdtContent customXml ins moveTo hyperlink fldSimple smartTag dir bdo".split()
}


def _docx(data: bytes) -> str:
    """The body's paragraphs and tables in document order (a table where it stands, each row on a
    line, its cells ` | `-joined), headings as `#` lines, a numbered paragraph after the label
    Word's automatic numbering shows for it (`docx_numbering`: "3.", "7.3", "a)", "-"), with the
    text of content controls (not of one showing its placeholder prompt) and tracked insertions,
    and equations in Word's linear format, without tracked deletions; a text box's
    paragraphs after the paragraph that anchors it; an imported chunk (`w:altChunk`: HTML, a web
    page archive or plain text, what web apps' "export to Word" writes) where it stands, read as
    such. Then the headers and footers (each distinct text once), the footnotes, the endnotes and
    the comments (each as "Comment (author): text")."""
    import docx
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.oxml import parse_xml

    from .docx_numbering import Numbering

    document = docx.Document(io.BytesIO(data))
    try:
        numbering: Numbering | None = Numbering(document)
    except Exception:  # damaged list definitions: the paragraphs are read without their numbers
        log.debug("unreadable numbering definitions in a DOCX", exc_info=True)
        numbering = None
    parts = list(_docx_blocks(document.element.body, document, document.part, numbering))
    parts.extend(_docx_headers_and_footers(document))
    notes = {rel.reltype: rel.target_part for rel in document.part.rels.values() if not rel.is_external}
    for kind, tag in ((RT.FOOTNOTES, "footnote"), (RT.ENDNOTES, "endnote"), (RT.COMMENTS, "comment")):
        if kind not in notes:
            continue
        for note in parse_xml(notes[kind].blob).iterchildren(f"{_W}{tag}"):
            if note.get(f"{_W}type", "normal") != "normal":
                continue  # the separator lines above the notes
            text = "\n\n".join(_docx_blocks(note, document, notes[kind]))
            if text and tag == "comment":
                author = " ".join((note.get(f"{_W}author") or "").split())
                text = f"Comment ({author}): {text}" if author else f"Comment: {text}"
            if text:
                parts.append(text)
    return "\n\n".join(parts)


def _docx_headers_and_footers(document: Any) -> Iterator[str]:
    """The text of the headers and footers every section references (first page, even and odd
    pages), each distinct text once: they repeat on every page, but they hold what a reader sees
    ("Confidential: Project Marmot draft", the author, a revision)."""
    from docx.oxml import parse_xml

    seen: set[str] = set()
    for section in document.element.body.iter(f"{_W}sectPr"):
        for reference in section:
            if reference.tag not in (f"{_W}headerReference", f"{_W}footerReference"):
                continue
            part = document.part.related_parts.get(reference.get(_R_ID))
            if part is None:
                continue
            text = "\n\n".join(_docx_blocks(parse_xml(part.blob), document, part))
            if text and text not in seen:
                seen.add(text)
                yield text


def _docx_blocks(container: Any, document: Any, part: Any, numbering: Numbering | None = None) -> Iterator[str]:
    """The text of the blocks of a body, a note, a comment, a header or a text box (`_docx`), in
    order; `part` is the package part holding them, whose relationships their ids name. With the
    document's `numbering` (the body's), a numbered paragraph starts with the label Word shows
    before it ("3.", "7.3", "a)", "-" for a bullet)."""
    from docx.text.paragraph import Paragraph

    for block in _docx_within(container, ("p", "tbl", "altChunk")):
        if block.tag == f"{_W}tbl":
            yield from (row for row in _docx_rows(block, numbering) if row.strip(" |"))
            continue
        if block.tag == f"{_W}altChunk":
            text = _docx_chunk(part, block)
            if text:
                yield text
            continue
        label = numbering.label(block) if numbering is not None else ""
        text = _docx_text(block).strip()
        if text:
            text = f"{label} {text}" if label else text
            style = Paragraph(block, document).style
            name = (style.name if style is not None else "") or ""
            if name.startswith("Heading"):
                level = name.removeprefix("Heading").strip()
                text = "#" * (int(level) if level.isdigit() else 1) + " " + text
            yield text
        for box in _docx_text_boxes(block):
            yield from _docx_blocks(box, document, part, numbering)


_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def _docx_text_boxes(paragraph: Any) -> Iterator[Any]:
    """The text boxes (`w:txbxContent`) a paragraph anchors, once each: Word writes each twice, as
    a drawing and as its VML fallback (`mc:Fallback`, left out), and a box inside a box is its
    outer box's."""
    for box in paragraph.iter(f"{_W}txbxContent"):
        above = box.getparent()
        while above is not None and above is not paragraph and above.tag not in (_MC_FALLBACK, f"{_W}txbxContent"):
            above = above.getparent()
        if above is paragraph:
            yield box


def _docx_chunk(owner: Any, chunk: Any) -> str:
    """The text of an imported chunk (`w:altChunk`): an HTML part through `html_to_text`, a web page
    archive (MHT) by its HTML part, plain text as it is; "" for any other kind (RTF, a nested DOCX)."""
    import email

    part = owner.related_parts.get(chunk.get(_R_ID))
    if part is None:
        return ""
    kind = part.content_type.split(";")[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        return html_to_text(decode(part.blob)).strip()
    if kind == "text/plain":
        return decode(part.blob).strip()
    if kind in ("message/rfc822", "multipart/related", "application/x-mimearchive"):
        archive = email.message_from_bytes(part.blob)
        for piece in archive.walk():
            if piece.get_content_type() in ("text/html", "text/plain"):
                payload = piece.get_payload(decode=True)
                if not isinstance(payload, bytes):
                    continue
                text = decode(payload, piece.get_content_charset())
                return (html_to_text(text) if piece.get_content_type() == "text/html" else text).strip()
    return ""


def _docx_within(element: Any, tags: tuple[str, ...]) -> Iterator[Any]:
    """The children of `element` named `tags` (`w:p`, `w:tbl`, ...; a tag of another namespace
    in full), in order, those inside the elements `_DOCX_SHOWN` names included, but for a
    content control showing its placeholder (`_placeholder`)."""
    for child in element:
        if child.tag in _DOCX_SHOWN:
            if not _placeholder(child):
                yield from _docx_within(child, tags)
        elif isinstance(child.tag, str) and (child.tag.removeprefix(_W) in tags or child.tag in tags):
            yield child


def _placeholder(element: Any) -> bool:
    """Whether `element` is a content control whose content is its placeholder prompt ("Click or
    tap here to enter text."): `w:showingPlcHdr` (ECMA-376 §17.5.2.39) says the field is empty."""
    if element.tag != f"{_W}sdt":
        return False
    shown = element.find(f"{_W}sdtPr/{_W}showingPlcHdr")
    return shown is not None and shown.get(f"{_W}val", "true").lower() not in ("0", "false", "off")


_M = "{http://schemas.openxmlformats.org/officeDocument/2006/math}"
_MATH = (f"{_M}oMath", f"{_M}oMathPara")


def _docx_text(paragraph: Any) -> str:
    """A paragraph's text: its runs' (tabs and breaks included) and its equations' (`_math_text`),
    those in `_DOCX_SHOWN` elements too."""
    inline = _docx_within(paragraph, ("r", *_MATH))
    return "".join(_math_text(piece) if piece.tag.startswith(_M) else piece.text for piece in inline)


# Office Math structures as Word's linear format writes them: (a)/(b), x^2, x_i, √(x), ∑_(i=1)^n
_MATH_SCRIPTS = {"sSup": ("e", "^sup"), "sSub": ("e", "_sub"), "sSubSup": ("e", "_sub", "^sup")}


def _math_text(element: Any) -> str:
    """An equation (`m:oMath`, `m:oMathPara`) as text, in Word's linear format for the common
    structures (fractions, scripts, radicals, delimiters, n-ary operators); any other structure
    as its pieces' text in order. Properties (`*Pr`) hold no text."""
    tag = element.tag.removeprefix(_M) if isinstance(element.tag, str) else ""
    if tag == "t":
        return element.text or ""
    part = {child.tag.removeprefix(_M): child for child in element if isinstance(child.tag, str)}

    def of(name: str) -> str:
        return _math_text(part[name]) if name in part else ""

    def grouped(name: str) -> str:
        text = of(name)
        return text if len(text) <= 1 else f"({text})"

    if tag == "f":
        return f"{grouped('num')}/{grouped('den')}"
    if tag in _MATH_SCRIPTS:
        base, *scripts = _MATH_SCRIPTS[tag]
        return of(base) + "".join(s[0] + grouped(s[1:]) for s in scripts)
    if tag == "rad":
        return f"√{grouped('e') if 'e' in part else ''}"
    if tag == "d":
        props = part.get("dPr")
        beg, end, sep = (
            _math_property(props, name, default)
            for name, default in (("begChr", "("), ("endChr", ")"), ("sepChr", "|"))
        )
        return beg + sep.join(_math_text(e) for e in element.iterfind(f"{_M}e")) + end
    if tag == "nary":
        sign = _math_property(part.get("naryPr"), "chr", "∫")
        sub, sup = grouped("sub"), grouped("sup")
        return sign + (f"_{sub}" if sub else "") + (f"^{sup}" if sup else "") + " " + of("e")
    separator = "\n" if tag == "oMathPara" else ""
    return separator.join(
        _math_text(child) for child in element if isinstance(child.tag, str) and not child.tag.endswith("Pr")
    )


def _math_property(props: Any, name: str, default: str) -> str:
    """The character a structure's properties set (`m:begChr`, `m:chr`), else the default."""
    found = props.find(f"{_M}{name}") if props is not None else None
    return default if found is None else found.get(f"{_M}val", "")


def _docx_cell_text(paragraph: Any, numbering: Numbering | None = None) -> str:
    """A paragraph's text in a table cell (after its numbering's label), with the paragraphs of
    the text boxes it anchors."""
    label = numbering.label(paragraph) if numbering is not None else ""
    boxes = [_docx_cell_text(p, numbering) for box in _docx_text_boxes(paragraph) for p in _docx_within(box, ("p",))]
    text = _docx_text(paragraph)
    return " ".join([f"{label} {text}" if label and text.strip() else text, *boxes])


def _docx_rows(table: Any, numbering: Numbering | None = None) -> Iterator[str]:
    """A table's rows, each its cells' text ` | `-joined (a cell's paragraphs and nested tables on one line)."""
    for row in _docx_within(table, ("tr",)):
        cells = []
        for cell in _docx_within(row, ("tc",)):
            blocks = _docx_within(cell, ("p", "tbl"))
            text = " ".join(
                " ".join(_docx_rows(b, numbering)) if b.tag == f"{_W}tbl" else _docx_cell_text(b, numbering)
                for b in blocks
            )
            cells.append(" ".join(text.split()))
        yield " | ".join(cells)


def _pptx(data: bytes) -> str:
    """Each slide with text as a `## Slide N` heading and the text of its shapes: text frames,
    tables (a row per line, cells ` | `-joined), SmartArt graphics (a line per node), charts (their
    title, series and categories) and the shapes inside groups; then its speaker notes."""
    from pptx import Presentation

    slides = []
    for number, slide in enumerate(Presentation(io.BytesIO(data)).slides, 1):
        texts = [t for t in _pptx_texts(slide.shapes) if t]
        notes = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
        if notes is not None and notes.text.strip():
            texts.append("Notes: " + notes.text.strip())
        if texts:  # a slide of pictures only adds no heading: a deck of them has no text
            slides.append(f"## Slide {number}\n\n" + "\n".join(texts))
    return "\n\n".join(slides)


def _pptx_texts(shapes: Any) -> Iterator[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _pptx_texts(shape.shapes)
        elif (diagram := _smartart_data(shape)) is not None:
            yield "\n".join(_smartart_texts(diagram))
        elif shape.has_text_frame:
            yield shape.text_frame.text.strip()
        elif getattr(shape, "has_chart", False):
            yield _pptx_chart(shape.chart)
        elif getattr(shape, "has_table", False):
            for row in shape.table.rows:
                line = " | ".join(" ".join(cell.text.split()) for cell in row.cells if not cell.is_spanned)
                yield line if line.strip(" |") else ""


_C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"


def _pptx_chart(chart: Any) -> str:
    """A chart as words: `Chart: title`, its series' names and its categories (the numbers are
    drawn, not written, and say little to a search). Read from the chart's XML, which every plot
    type writes alike (python-pptx's plot objects know only the 2-D kinds)."""
    space = chart._chartSpace
    paragraphs = space.iterfind(f"{_C}chart/{_C}title//{_A}p")
    title = " ".join(" ".join("".join(t.text or "" for t in p.iter(f"{_A}t")) for p in paragraphs).split())
    series = [
        " ".join(v.text.split()) for v in space.iterfind(f".//{_C}ser/{_C}tx//{_C}v") if v.text and v.text.strip()
    ]
    first = space.find(f".//{_C}ser")
    points = [] if first is None else first.iterfind(f"{_C}cat//{_C}pt/{_C}v")
    categories = [" ".join(v.text.split()) for v in points if v.text and v.text.strip()]
    lines = [f"Chart: {title}" if title else "Chart"]
    if series:
        lines.append("Series: " + ", ".join(dict.fromkeys(series)))
    if categories:
        lines.append("Categories: " + ", ".join(categories))
    return "\n".join(lines) if len(lines) > 1 or title else ""


_DGM = "{http://schemas.openxmlformats.org/drawingml/2006/diagram}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_SMARTART = "http://schemas.openxmlformats.org/drawingml/2006/diagram"


def _smartart_data(shape: Any) -> bytes | None:
    """The data part of a SmartArt graphic (a graphic frame pointing at a diagram), else None."""
    element = shape.element
    data = element.find(f"{_A}graphic/{_A}graphicData[@uri='{_SMARTART}']/{_DGM}relIds")
    if data is None:
        return None
    rid = data.get("{http://schemas.openxmlformats.org/officeDocument/2006/relationships}dm")
    try:
        return shape.part.related_part(rid).blob
    except KeyError:
        return None


def _smartart_texts(data: bytes) -> Iterator[str]:
    """The text of a SmartArt graphic's nodes (its data part's points, in their order): a line per
    paragraph; the points PowerPoint adds for its own layout and connectors hold none."""
    from pptx.oxml import parse_xml

    model = parse_xml(data)
    for point in model.iter(f"{_DGM}pt"):
        if point.get("type", "node") not in ("node", "asst"):
            continue
        for paragraph in point.iterfind(f"{_DGM}t/{_A}p"):
            line = " ".join("".join(run.text or "" for run in paragraph.iter(f"{_A}t")).split())
            if line:
                yield line


def _xlsx(data: bytes) -> str:
    """Each sheet as a heading and its rows as ` | `-joined cell values (computed values, not
    formulas; a date as its ISO date, a percentage as one), without the columns that are empty in
    every row nor a row's empty cells after its last value: a formatted but empty cell far to the
    right does not pad every row with empty cells. A formula whose value the file does not hold
    (a workbook a program wrote, never opened in a spreadsheet app to compute it) is shown as the
    formula (`=SUM(B2:B9)`), not as an empty cell. Every row the sheet holds is read, whatever
    range it declares (`_xlsx_rows`). After a sheet's rows, its notes, comments and page header
    and footer text (`_xlsx_extras`), as a DOCX's are read."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    formulas = load_workbook(io.BytesIO(data), read_only=True) if _uncached_formulas(data) else None
    try:
        extras = _xlsx_extras(data)
    except Exception:  # notes and headers are a nicety: a damaged one leaves the cells to read
        log.debug("unreadable notes or headers in a workbook", exc_info=True)
        extras = {}
    sheets = []
    try:
        for number, sheet in enumerate(book.worksheets):
            rows_of = _xlsx_rows(sheet)
            if formulas is None:
                grid = [[_xlsx_value(cell) for cell in row] for row in rows_of]
            else:
                pairs = zip(rows_of, _xlsx_rows(formulas.worksheets[number]))
                grid = [[_xlsx_value(c) or _xlsx_formula(f) for c, f in zip(row, same)] for row, same in pairs]
            used = sorted({n for row in grid for n, value in enumerate(row) if value})
            rows = [
                " | ".join(_without_trailing_empties([row[n] if n < len(row) else "" for n in used])) for row in grid
            ]
            rows = [r for r in rows if r]
            more = extras.get(sheet.title, [])
            if rows or more:
                sheets.append("\n\n".join([f"## {sheet.title}", *(["\n".join(rows)] if rows else []), *more]))
    finally:
        book.close()
        if formulas is not None:
            formulas.close()
    return "\n\n".join(sheets)


_SS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_PACKAGE_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_TC = "{http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments}"
_OFFICE_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
# A header's or footer's formatting codes (fonts, sizes, colours, sections, page numbers, dates,
# the file's and sheet's names, pictures), none of them text a person wrote; `&&` is an `&`
_HEADER_CODES = re.compile(r'&(?:"[^"]*"|K[0-9A-Fa-f]{6}|K\d\d[+-]\d{3}|\d+|[LCR]|[PNDTZFAGBIUESXYOH])')
_HEADER_FIELDS = re.compile(r"&[PNDTZFA]")  # the page number and count, date, time, path, file and sheet names


def _xlsx_extras(data: bytes) -> dict[str, list[str]]:
    """What each sheet holds besides its cells, by sheet name: its notes and comments, each as
    "Comment on B3 (author): text" in cell order (a threaded comment with its replies; the legacy
    note Excel writes beside a threaded comment for older versions is the same words, left out),
    then its page header and footer text (`_xlsx_header_footer`), each distinct text once in the
    workbook, as a DOCX's headers are."""
    from docx.oxml import parse_xml  # lxml's, entities not resolved

    with zipfile.ZipFile(io.BytesIO(data)) as package:
        names = set(package.namelist())

        def xml(name: str) -> Any:
            return parse_xml(package.read(name)) if name in names else None

        def rels(part: str) -> dict[str, tuple[str, str]]:
            """id -> (type's last word, target part) of a part's relationships."""
            folder, _, leaf = part.rpartition("/")
            found = xml(f"{folder}/_rels/{leaf}.rels")
            targets = {}
            for rel in [] if found is None else found.iterfind(f"{_PACKAGE_RELS}Relationship"):
                target = rel.get("Target", "")
                path = target.lstrip("/") if target.startswith("/") else _joined(folder, target)
                targets[rel.get("Id", "")] = (rel.get("Type", "").rsplit("/", 1)[-1], path)
            return targets

        workbook = xml("xl/workbook.xml")
        if workbook is None:
            return {}
        book_rels = rels("xl/workbook.xml")
        people = xml(next((path for kind, path in book_rels.values() if kind == "person"), ""))
        names_of = {
            p.get("id"): p.get("displayName", "") for p in ([] if people is None else people.iter(f"{_TC}person"))
        }
        extras: dict[str, list[str]] = {}
        seen: set[str] = set()
        for sheet in workbook.iter(f"{_SS}sheet"):
            part = book_rels.get(sheet.get(f"{_OFFICE_R}id", ""), ("", ""))[1]
            if part not in names:
                continue
            lines: dict[str, str] = {}
            for kind, target in rels(part).values():
                found = xml(target) if kind in ("comments", "threadedComment") else None
                if found is None:
                    continue
                if kind == "threadedComment":
                    lines.update(_threaded_comments(found, names_of))
                else:
                    for ref, line in _notes(found).items():
                        lines.setdefault(ref, line)
            texts = [lines[ref] for ref in sorted(lines, key=_cell_order)]
            for text in _xlsx_header_footer(package, part):
                if text not in seen:
                    seen.add(text)
                    texts.append(text)
            if texts:
                extras[sheet.get("name", "")] = texts
    return extras


def _joined(folder: str, target: str) -> str:
    """A relationship's relative target as a part name (`../comments1.xml` of `xl/worksheets`)."""
    parts = folder.split("/") if folder else []
    for piece in target.split("/"):
        if piece == "..":
            parts = parts[:-1]
        elif piece not in ("", "."):
            parts.append(piece)
    return "/".join(parts)


def _notes(comments: Any) -> dict[str, str]:
    """cell -> "Comment on B3 (author): text" of a sheet's notes (`xl/comments*.xml`); a note whose
    text starts with its author's name and a colon (as Excel writes it) does not repeat it."""
    authors = [" ".join((a.text or "").split()) for a in comments.iterfind(f"{_SS}authors/{_SS}author")]
    found = {}
    for comment in comments.iter(f"{_SS}comment"):
        ref = comment.get("ref", "")
        text = "".join(t.text or "" for t in comment.iterfind(f"{_SS}text//{_SS}t"))
        if text.lstrip().startswith("[Threaded comment]"):
            continue  # what Excel writes for older versions beside a threaded comment
        number = int(comment.get("authorId", "-1")) if comment.get("authorId", "").isdigit() else -1
        author = authors[number] if 0 <= number < len(authors) else ""
        text = " ".join(text.split())
        if author and text.startswith(f"{author}:"):
            text = text[len(author) + 1 :].strip()
        if text:
            found[ref] = f"Comment on {ref} ({author}): {text}" if author else f"Comment on {ref}: {text}"
    return found


def _threaded_comments(threads: Any, names_of: dict[str | None, str]) -> dict[str, str]:
    """cell -> its threaded comment and replies, "Comment on B3 (author): text; reply (author): text"."""
    by_cell: dict[str, list[str]] = {}
    for comment in threads.iter(f"{_TC}threadedComment"):
        text = " ".join("".join(t.text or "" for t in comment.iter(f"{_TC}text")).split())
        if not text:
            continue
        author = " ".join(names_of.get(comment.get("personId"), "").split())
        ref = comment.get("ref", "")
        said = f" ({author}): {text}" if author else f": {text}"
        lead = "reply" if ref in by_cell else f"Comment on {ref}"
        by_cell.setdefault(ref, []).append(lead + said)
    return {ref: "; ".join(lines) for ref, lines in by_cell.items()}


def _cell_order(ref: str) -> tuple[int, int]:
    """(row, column) of a cell reference (`B3`: (3, 2)), for reading notes in the sheet's order."""
    found = re.fullmatch(r"([A-Za-z]+)(\d+)", ref)
    if not found:
        return (0, 0)
    column = 0
    for letter in found[1].upper():
        column = column * 26 + ord(letter) - 64
    return int(found[2]), column


_HEADER_FOOTER = re.compile(rb"<(?:\w+:)?headerFooter\b.*?</(?:\w+:)?headerFooter>", re.S)


def _xlsx_header_footer(package: zipfile.ZipFile, part: str) -> list[str]:
    """The text of a sheet's page headers and footers (odd, even, first page), without their
    formatting codes (`_HEADER_CODES`), each distinct one once. `<headerFooter>` follows the
    cells in the sheet's XML: found a slice at a time, as `_uncached_formulas` reads."""
    from docx.oxml import parse_xml

    found = None
    with package.open(part) as sheet:
        tail = b""
        while found is None and (chunk := sheet.read(_SCAN)):
            window = tail + chunk
            found = _HEADER_FOOTER.search(window)
            tail = window[-_OVERLAP:]
    if found is None:
        return []
    try:
        element = parse_xml(found[0])
    except Exception:  # a prefix the snippet leaves undeclared: no header read, the cells are
        log.debug("unreadable header or footer in %s", part, exc_info=True)
        return []
    texts: list[str] = []
    for piece in element:
        code = (piece.text or "").replace("&&", "\x00")
        words = _HEADER_CODES.sub(" ", code).replace("\x00", "&").split()
        if len(words) <= 2 and _HEADER_FIELDS.search(code):
            continue  # "Page &P of &N", "&D": what the printer fills in, no words of the author's
        text = " ".join(words)
        if text and text not in texts:
            texts.append(text)
    return texts


def _xlsx_rows(sheet: Any) -> Iterator[tuple[Any, ...]]:
    """Every row the sheet's XML holds, whatever range its `<dimension>` declares: that is an
    optional hint (ECMA-376 §18.3.1.35) which exporters often get wrong (`A1` over thousands of
    rows, or a range gone stale), and openpyxl's read-only mode stops at it. A row is as long as
    its last cell, not padded to a declared width."""
    sheet.reset_dimensions()
    return sheet.iter_rows()


# A cell holding a formula and no value: `<c r="B4"><f>SUM(B2:B3)</f><v></v></c>` (or no `<v>`)
_UNCACHED_FORMULA = re.compile(
    rb"<(?:\w+:)?f\b[^<>]*+(?:/>|>[^<]*+</(?:\w+:)?f>)\s*+(?:<(?:\w+:)?v\s*/>|<(?:\w+:)?v>\s*</(?:\w+:)?v>)?\s*</(?:\w+:)?c>"
)
_SCAN = 1 << 20  # bytes of a sheet's XML searched at a time
_OVERLAP = 65_536  # more than a cell with a formula (at most 8,192 characters) takes


def _uncached_formulas(data: bytes) -> bool:
    """Whether a sheet of the workbook `data` holds a formula without its value, read a slice of
    its XML at a time (the sheets' sizes are within `UNPACK_ALLOWANCE`, checked before)."""
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        for name in package.namelist():
            if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                continue
            with package.open(name) as part:
                tail = b""
                while chunk := part.read(_SCAN):
                    window = tail + chunk
                    if _UNCACHED_FORMULA.search(window):
                        return True
                    tail = window[-_OVERLAP:]
    return False


def _xlsx_formula(cell: Any) -> str:
    """A formula cell's formula as the spreadsheet's formula bar shows it (`=SUM(B2:B3)`), else ""."""
    value = getattr(cell, "value", None)
    value = getattr(value, "text", value)  # an array formula
    return value if isinstance(value, str) and value.startswith("=") else ""


def _without_trailing_empties(values: list[str]) -> list[str]:
    while values and not values[-1]:
        values.pop()
    return values


def _xlsx_value(cell: Any) -> str:
    """A cell's value as text: a date without a time of day as its ISO date, a number formatted as
    a percentage as one, a float without binary noise (0.30000000000000004 is 0.3)."""
    value = getattr(cell, "value", None)
    if value is None:
        return ""
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "%" in (getattr(cell, "number_format", "") or ""):
            return f"{value * 100:.15g}%"
        return f"{value:.15g}" if isinstance(value, float) else str(value)
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)
