"""Plain text for the index: a document body that is HTML becomes text before it is chunked.

Invariant: no text the index chunks, stores or returns holds markup tags, except what a person
typed in a document its connector made plain itself (`Document.plain_text`: Slack's and Teams'
messages, where `<div>` in a question about HTML is the question). Connectors convert the HTML
they know about (a `text/html` file, an Outlook body), but HTML also arrives as plain text (a
newsletter pasted into a mail, an export that kept its tags, a plug-in that passes bodies
through): `plain` runs once in the index's write path, for every other document. An HTML document
is converted whole; in other text (a README with a centred logo, a `<br>` in a mail) only the lines
holding HTML markup are, and the text around them stays as written. Tags written as text are no
markup and stay: inside Markdown code (a code span, a fenced block), and a tag named in prose or a
comparison that looks like one ("drop the <center> tag", `a<b and c>d`: `_markup` says which tags
are markup). Word's namespace declarations
(`<?xml:namespace prefix = o ns = "urn:schemas-microsoft-com:office:office" />`, left in a plain-text
body by a converter that dropped the tags around them) are dropped from any text: nobody writes one,
and no reader shows one. Other processing instructions in text without HTML (`<?php`, an XML
file's `<?xml version="1.0"?>` in a README) are what the author wrote and stay. Invisible format
characters that split a word (a soft hyphen, a zero-width space) are dropped from every document,
and so are bytes written into text as base64 (`without_embedded_data`: a pasted image's `data:`
URI, its alt text kept; a key or an attachment left encoded), which no reader reads as words.
No reader is handed what no reader sees (`readable`, for every title and text, when indexed and
again when served, for documents indexed before; at indexing also after character references are
decoded, so `&#x202E;` in an HTML body is no override either): control characters but tab and
newline, bidi embedding, override and isolate controls (a title "Invoice <U+202E>fdp.exe" shows as
"Invoice exe.pdf"), and Unicode tag characters (invisible text a language model still reads, but
the three subdivision flags' tag sequences: the flag of Scotland); every line end (CR LF, CR,
vertical tab, form feed, NEL, U+2028) is a newline, U+2029 a blank line. The index keeps CR LF as
it was written (the chunker splits lines at the LF; served text is `readable`), so a Windows text
file or CSV keeps the content hash it had. `plain` is a no-op for text without any of these, so
such documents keep their content hash and are not re-embedded.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from inlet.connectors.extract import html_to_text, without_elements

if TYPE_CHECKING:
    from inlet.connectors.model import Document

# A tag as a browser reads one: `<`, a name, then whitespace, `/` or `>` (`<svg/onload=...>` is one,
# `a < b > c`, `<<File>>` and `a<b; c > 3` are not). Only elements HTML has count as markup.
_TAG = re.compile(r"</?([a-zA-Z][a-zA-Z0-9:-]{0,31})(?=[\s/>])[^<>]{0,2000}>")
_HTML_ELEMENTS = frozenset(
    "a abbr address area article aside audio b base basefont big blockquote body br button canvas caption "
    "center cite code col colgroup dd del details dfn dialog dir div dl dt em embed fieldset figcaption "
    "figure font footer form frame frameset h1 h2 h3 h4 h5 h6 head header hr html i iframe img input ins "
    "kbd label legend li link main map mark marquee math meta nav noscript o:p object ol option p picture "
    "pre q s samp script section select small source span strike strong style sub summary sup svg table "
    "tbody td template textarea tfoot th thead title tr tt u ul var video wbr".split()
)
# What makes text an HTML document, converted whole (its line breaks are HTML's white space): a line
# that starts with one of these, outside a Markdown code fence (a README's example page is no page)
_DOCUMENT = re.compile(r"^[ \t]*(?:<(?:html|body|head)(?=[\s/>])|<!doctype(?=\s))", re.I | re.M)
_FENCE = re.compile(r"^[ \t]{0,3}(?:```|~~~)", re.M)
_BLOCK_INDENT = re.compile(r"[ \t]{0,3}")  # before a tag that starts a line: up to three spaces, as in Markdown
_TAG_OR_LINE_END = re.compile(r"</?[a-zA-Z][^<>]{0,2000}>|\n")  # a line end in a tag is no line's
_BLANK_LINE = re.compile(r"\n[^\S\n]*(?:\n|\Z)")
_DECLARATION = re.compile(r"<!DOCTYPE[^<>]{0,2000}>|<\?xml[^<>]{0,2000}\?>", re.I)
_OFFICE_NAMESPACE = re.compile(r"<\?xml:namespace\s[^<>]{0,2000}>", re.I)  # Word's, ending "/>"
# A comment, or an element nobody reads; `without_elements` drops each with its content.
_INVISIBLE_OPENER = re.compile(r"<!--|<(script|style|head)(?=[\s/>])[^<>]{0,2000}>?", re.I)
_INVISIBLE_ENDS = {
    "!--": re.compile("-->"),
    "script": re.compile(r"</script\s*>", re.I),
    "style": re.compile(r"</style\s*>", re.I),
    "head": re.compile(r"</head\s*>|(?=<body[\s/>])", re.I),
}


# Invisible format characters that only hint at hyphenation, line breaks or ligatures: a soft
# hyphen (with the line break after one: "pass\u00ad\nword" was hyphenated there), a word joiner and
# a zero-width no-break space go wherever they are; a zero-width space, non-joiner and joiner between
# letters of a script written with spaces (Latin, Greek, Cyrillic, Armenian), where they split a word.
# Elsewhere they mean something: where a Thai or Khmer word ends, how Persian or Indic letters join,
# which emoji make one picture.
_SPACED_LETTER = r"[^\W_\u0590-\U0010ffff]|[\u0300-\u036f\u1e00-\u1fff]"
_INVISIBLE = re.compile(
    rf"\u00ad\r?\n(?=\w)|[\u00ad\u2060\ufeff]|(?<={_SPACED_LETTER})[\u200b-\u200d]+(?={_SPACED_LETTER})"
)


# Line ends other than "\n" (Windows', classic Mac's, Word's vertical tab, a form feed between
# pages, NEL, the line and paragraph separators); `_STORED_LINE_END` all but CR LF, which the index
# keeps as written
_LINE_END = re.compile("\r\n?|[\v\f\x85\u2028]")
_STORED_LINE_END = re.compile("\r(?!\n)|[\v\f\x85\u2028]")
# What no reader is shown: C0 and C1 controls but tab and newline; bidi embeddings, overrides and
# isolates ("Trojan Source"; the marks U+200E/U+200F stay: they only place punctuation); interlinear
# annotation controls; the tag block, invisible text ("ASCII smuggling"), but the tag sequences of
# the three subdivision flags there are (England, Scotland, Wales: black flag, "gb" and "eng",
# "sct" or "wls" in tags, cancel tag), kept as group 1. Not CR: the line ends go first, and what
# `_STORED_LINE_END` leaves of CR is CR LF.
_FLAG = (
    "(\U0001f3f4\U000e0067\U000e0062"  # black flag, "gb"
    "(?:\U000e0065\U000e006e\U000e0067|\U000e0073\U000e0063\U000e0074|\U000e0077\U000e006c\U000e0073)"  # eng sct wls
    "\U000e007f)"
)
_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufff9-\ufffb\U000e0000-\U000e007f"
_UNSEEN = re.compile(f"{_FLAG}|[{_CONTROLS}]")
# Any character `readable` changes (`_LINE_END`, `_UNSEEN`, `_INVISIBLE`'s): text without one is
# returned as it is, after one search
_CHANGED = re.compile(f"[\r\u00ad\u200b-\u200d\u2028\u2029\u2060\ufeff{_CONTROLS}]")


def readable(text: str) -> str:
    """`text` as a reader is shown it: every line end a newline (a paragraph separator a blank
    line), without controls, bidi embedding/override/isolate characters and tag characters
    (`_UNSEEN`), nor the invisible characters that split a word (`visible_text`); `text` itself
    when it holds none. The one cleaning of every title, passage and field the index hands out."""
    return _without_unseen(text, _LINE_END)


def _stored(text: str) -> str:
    """`readable(text)` but that CR LF stays as written: what the index stores (a Windows text
    file keeps the content hash it had before `readable` was)."""
    return _without_unseen(text, _STORED_LINE_END)


def _without_unseen(text: str, line_end: re.Pattern[str]) -> str:
    if not _CHANGED.search(text):
        return text
    text = line_end.sub("\n", text).replace("\u2029", "\n\n")
    return visible_text(_UNSEEN.sub(lambda found: found[1] or "", text))


def readable_values(values: dict[str, Any]) -> dict[str, Any]:
    """`values` (a document's metadata) with its texts, and texts in lists (a mail's recipients),
    `readable`."""

    def value(v: Any) -> Any:
        if isinstance(v, str):
            return readable(v)
        return [readable(x) if isinstance(x, str) else x for x in v] if isinstance(v, list) else v

    return {k: value(v) for k, v in values.items()}


# In a link, every control (tab and line ends too), the line and paragraph separators and `_UNSEEN`'s
_URL_UNSEEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufff9-\ufffb\U000e0000-\U000e007f]")


def readable_url(url: str) -> str:
    """`url` with each character `readable` would drop or turn into a line end percent-encoded (as
    UTF-8): the link still works, and shows no reversed text or hidden tag."""
    return _URL_UNSEEN.sub(lambda found: quote(found[0], safe=""), url)


# Bytes written into text as base64. A Markdown image or link whose target is a `data:` URI is its
# alt text (inline, or by a reference whose definition is one: a Google Doc's Markdown export);
# any other base64 `data:` URI goes (an `<img src>` in a pasted page, a CSS `url()`); so does a run
# of base64 of 200 characters or more, unbroken or wrapped in lines of 60 or more (MIME, PEM, PGP),
# that mixes capitals, small letters and digits as encoded bytes do and no word or identifier does.
_DATA_LINK = re.compile(r"!?\[([^\]\n]*+)\]\(<?data:[^)\n]*+\)")
_DATA_DEFINITION = re.compile(r"^[ \t]{0,3}\[([^\]\n]++)\]:[ \t]*+<?data:[^\n]*+(?:\n|\Z)", re.M)
_REFERENCE = re.compile(r"!?\[([^\]\n]*+)\]\[([^\]\n]*+)\]")
_DATA_URI = re.compile(r"data:[\w.+-]++/[\w.+-]++(?:;[\w.+-]++=[^;,\s\"')]*+)*+;base64,[A-Za-z0-9+/]*+=*+", re.I)
_BASE64_RUN = re.compile(
    r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{200,}+=*+(?![A-Za-z0-9+/=])"  # unbroken
    r"|(?:^[ \t]*+[A-Za-z0-9+/]{60,}+=*+[ \t]*+\n){3,}+(?:[ \t]*+[A-Za-z0-9+/]++=*+[ \t]*+(?:\n|\Z))?",  # wrapped
    re.M,
)
_ENCODED = (re.compile("[A-Z]"), re.compile("[a-z]"), re.compile("[0-9]"))


def without_embedded_data(text: str) -> str:
    """`text` without the bytes written into it as base64 (`_DATA_LINK` to `_BASE64_RUN`): a
    Markdown image or link to a `data:` URI is its alt text, and everything else it was is left
    out; unchanged when it holds none."""
    if "data:" in text:
        labels = {m[1].strip().lower() for m in _DATA_DEFINITION.finditer(text)}
        text = _DATA_LINK.sub(r"\1", _DATA_DEFINITION.sub("", text))
        if labels:
            text = _REFERENCE.sub(lambda m: m[1] if (m[2] or m[1]).strip().lower() in labels else m[0], text)
        text = _DATA_URI.sub("", text)
    return _BASE64_RUN.sub(lambda m: "" if all(c.search(m[0]) for c in _ENCODED) else m[0], text)


# Elements with no content and no closing tag: `<br>` alone is markup, where `<center>` alone is a name
_VOID = frozenset("area base basefont br col embed frame hr img input link meta param source track wbr".split())
# Markdown code, which is text whatever it holds (CommonMark §4.5, §6.1): a fenced block (to its
# closing fence, or the end of the text) and a code span (backticks around text on one line)
_FENCED = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[^\n]*\n(?:.*?\n)??(?:[ \t]{0,3}\1[`~]*[ \t]*(?=\n|\Z)|\Z)", re.M | re.S)
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)[^\n]+?(?<!`)\1(?!`)")
_PROTECTED = re.compile("\ue000(\\d+)\ue001")  # where `_protected` set a piece of code aside


def markup_tags(text: str) -> list[str]:
    """The HTML markup tags in `text` (`_markup`), outside Markdown code: what no text may hold."""
    protected, _ = _protected(text)
    return [m[0] for m in _markup(protected)]


def _markup(text: str) -> list[re.Match[str]]:
    """The tags of `text` that are markup, not text naming a tag: an HTML element's tag that closes
    itself (`<br/>`), is a void element's (`<br>`, `<img src=...>`), or whose element has both
    its tags in the text (`<b>Save</b>`). "Drop the <center> tag", "the <title> must read" and
    "a<b and c>d" name no markup: every mail client shows them as written."""
    tags = [m for m in _TAG.finditer(text) if m[1].lower() in _HTML_ELEMENTS]
    opened = {m[1].lower() for m in tags if not m[0].startswith("</")}
    closed = {m[1].lower() for m in tags if m[0].startswith("</")}
    both = opened & closed
    return [m for m in tags if m[1].lower() in _VOID or m[1].lower() in both or m[0].endswith("/>")]


def _protected(text: str) -> tuple[str, list[str]]:
    """`text` with each piece of Markdown code (`_FENCED`, `_CODE_SPAN`) set aside as a marker
    (`_PROTECTED`: private-use characters no converter touches), and the pieces, to put back."""
    pieces: list[str] = []

    def aside(found: re.Match[str]) -> str:
        pieces.append(found[0])
        return f"\ue000{len(pieces) - 1}\ue001"

    if "`" not in text and "~~~" not in text:
        return text, pieces
    return _CODE_SPAN.sub(aside, _FENCED.sub(aside, text)), pieces


def _put_back(text: str, pieces: list[str]) -> str:
    return _PROTECTED.sub(lambda m: pieces[int(m[1])] if int(m[1]) < len(pieces) else "", text) if pieces else text


def looks_like_html(text: str) -> bool:
    """Any HTML markup, even one `<br>` in plain text, outside Markdown code: what a converter should read."""
    return bool(markup_tags(text))


def clean_text(text: str) -> str:
    """`text` as plain text: an HTML document converted whole; else (plain or Markdown text holding
    some HTML) its HTML converted and the text around it kept as written; else unchanged, but for
    Word's namespace declarations."""
    text = _OFFICE_NAMESPACE.sub("", text)
    if not looks_like_html(text):
        return text
    if not _is_document(text):
        return _tags_as_text(text)
    # Plain text before the first tag (a mail's own words above a pasted newsletter) keeps its lines.
    first = next((m.start() for m in _TAG.finditer(text) if m[1].lower() in _HTML_ELEMENTS), 0)
    first = min(first, text.find("<!") if 0 <= text.find("<!") < first else first)
    first = text.rfind("\n", 0, first) + 1  # whole lines: "See <img ...> for details" stays one line
    lead, body = text[:first].rstrip(), _converted(_visible_markup(text[first:]))
    return f"{lead}\n\n{body}".strip() if lead else body


def _is_document(text: str) -> bool:
    """Whether a line of `text` outside a code fence starts an HTML document (`<html>`, `<body>`,
    `<head>`, a doctype)."""
    fences = [m.start() for m in _FENCE.finditer(text)]
    return any(bisect.bisect(fences, found.start()) % 2 == 0 for found in _DOCUMENT.finditer(text))


def _visible_markup(text: str) -> str:
    """`text` without declarations, comments and elements nobody reads (scripts, styles, a head)."""
    return without_elements(_DECLARATION.sub(" ", text), _INVISIBLE_OPENER, _invisible_end)


def _converted(html: str) -> str:
    """`html` as text, without any tag the converter left (`&lt;b&gt;`) or its references spell
    (`&lt;sc&#8203;ript&gt;`: what no reader sees of the decoded text is dropped first)."""
    return _without_tags(_stored(html_to_text(_literal_brackets(html))))


def _without_tags(text: str) -> str:
    return _TAG.sub(lambda m: "" if m[1].lower() in _HTML_ELEMENTS else m[0], text)


def _tags_as_text(text: str) -> str:
    """Text holding some HTML (a README's centred logo, a `<br>` in a mail) with only its HTML
    converted, lines kept: a headed Markdown file keeps its headings, paragraphs and code blocks
    (its code as written, whatever tags it shows), tags named in prose stay (`_markup`), and an `&`
    outside the HTML is as written."""
    text, pieces = _protected(text)
    text = _visible_markup(text)
    out, at = [], 0
    for start, end in _html_spans(text):
        converted = _converted(_TAG_OR_LINE_END.sub(lambda m: m[0] if m[0] != "\n" else "<br>\n", text[start:end]))
        out.append(text[at:start] + converted)
        at = end + 1 if not converted and text.startswith("\n", end) else end  # no line left where a logo was
    out.append(text[at:])
    joined = "".join(out)  # without what the converted text and the next line might spell:
    kept = _without_markup(joined).strip()
    return _put_back(kept, pieces)


def _without_markup(text: str) -> str:
    """`text` without its markup tags (`_markup`)."""
    markup = {m.start() for m in _markup(text)}
    return _TAG.sub(lambda m: "" if m.start() in markup else m[0], text) if markup else text


def _html_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of whole lines of `text` holding HTML, in order and apart: the lines
    an element's tag spans, or, for a line that starts with a tag, up to the next blank line (an HTML
    block, as in Markdown). Linear: each search starts past the run found before."""
    span: tuple[int, int] | None = None
    for tag in _markup(text):
        if span and tag.end() <= span[1]:
            continue
        line = text.rfind("\n", 0, tag.start()) + 1
        if _BLOCK_INDENT.fullmatch(text, line, tag.start()):
            blank = _BLANK_LINE.search(text, tag.end())
            end = blank.start() if blank else len(text)
        else:
            end = text.find("\n", tag.end()) % (len(text) + 1)  # -1 (no line end): the end of the text
        if span and line <= span[1] + 1:  # the next line: one run
            span = (span[0], max(span[1], end))
            continue
        if span:
            yield span
        span = (line, end)
    if span:
        yield span


def _invisible_end(opener: re.Match[str]) -> re.Pattern[str]:
    """Where a comment or an element nobody reads ends (a head also where the body starts)."""
    return _INVISIBLE_ENDS[(opener[1] or "!--").lower()]


def _literal_brackets(source: str) -> str:
    """`source` with every `<` that opens no tag escaped: in "Vec<String>" or "a<b; c > 3" it is
    text, which an HTML converter would otherwise read as an unknown tag and drop. A tag is an HTML
    element's, one with attributes (Teams' `<emoji alt="...">`), or the closing tag of either."""
    found = list(_TAG.finditer(source))
    opened = {
        m[1].lower() for m in found if not m[0].startswith("</") and (m[1].lower() in _HTML_ELEMENTS or "=" in m[0])
    }
    tags = {m.start() for m in found if m[1].lower() in _HTML_ELEMENTS or m[1].lower() in opened}
    return re.sub(r"<", lambda m: "<" if m.start() in tags or source.startswith("<!", m.start()) else "&lt;", source)


def visible_text(text: str) -> str:
    """`text` without the invisible format characters that split a word a reader sees whole:
    "pass\\u00adword" (a soft hyphen) is "password", as a browser's find-in-page reads it."""
    return _INVISIBLE.sub("", text)


def plain(doc: "Document") -> "Document":
    """`doc` with a plain-text body: the same object when its text holds no HTML (or its connector
    made it plain), no base64 (`without_embedded_data`, whichever connector made it), and neither
    it nor its title anything `readable` changes but CR LF, else a copy whose text and title (and so
    content hash: stored markup is re-chunked once) are converted."""
    # readable first: "<sc\u200bript>" is a tag once the reader's eye joins it; and again once
    # `clean_text` has decoded the references of HTML ("&#x202E;" is an override then)
    text = without_embedded_data(_stored(doc.text))
    text = text if doc.plain_text else _stored(clean_text(text))
    title = _stored(doc.title) if doc.title else doc.title
    return doc if (text, title) == (doc.text, doc.title) else doc.model_copy(update={"text": text, "title": title})
