"""Plain text for the index: a document body that is HTML becomes text before it is chunked.

Invariant: no text the index chunks, stores or returns holds markup tags, except what a person
typed in a document its connector made plain itself (`Document.plain_text`: Slack's and Teams'
messages, where `<div>` in a question about HTML is the question). Connectors convert the HTML
they know about (a `text/html` file, an Outlook body), but HTML also arrives as plain text (a
newsletter pasted into a mail, an export that kept its tags, a plug-in that passes bodies
through): `plain` runs once in the index's write path, for every other document, and is a no-op
for text without tags, so such documents keep their content hash and are not re-embedded.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

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
_DECLARATION = re.compile(r"<!DOCTYPE[^<>]{0,2000}>|<\?xml[^<>]{0,2000}\?>", re.I)
# A comment, or an element nobody reads; `without_elements` drops each with its content.
_INVISIBLE_OPENER = re.compile(r"<!--|<(script|style|head)(?=[\s/>])[^<>]{0,2000}>?", re.I)
_INVISIBLE_ENDS = {
    "!--": re.compile("-->"),
    "script": re.compile(r"</script\s*>", re.I),
    "style": re.compile(r"</style\s*>", re.I),
    "head": re.compile(r"</head\s*>|(?=<body[\s/>])", re.I),
}


def markup_tags(text: str) -> list[str]:
    """The HTML tags in `text` (for tests and checks): elements only HTML has, opening or closing."""
    return [m[0] for m in _TAG.finditer(text) if m[1].lower() in _HTML_ELEMENTS]


def looks_like_html(text: str) -> bool:
    """Any HTML tag, even one `<br>` in plain text: what a converter should read."""
    return bool(markup_tags(text))


def clean_text(text: str) -> str:
    """`text` as plain text: HTML (whole or embedded in plain text) converted, else unchanged."""
    if not looks_like_html(text):
        return text
    # Plain text before the first tag (a mail's own words above a pasted newsletter) keeps its lines.
    first = next(m.start() for m in _TAG.finditer(text) if m[1].lower() in _HTML_ELEMENTS)
    first = min(first, text.find("<!") if 0 <= text.find("<!") < first else first)
    first = text.rfind("\n", 0, first) + 1  # whole lines: "See <img ...> for details" stays one line
    lead, source = (
        text[:first].rstrip(),
        without_elements(_DECLARATION.sub(" ", text[first:]), _INVISIBLE_OPENER, _invisible_end),
    )
    source = _literal_brackets(source)
    if not re.search(r"<(html|body|p|div|table|tr|li)\b", source, re.I):
        source = source.replace("\n", "<br>\n")  # tags sprinkled in plain text: keep the text's lines
    body = _TAG.sub(lambda m: "" if m[1].lower() in _HTML_ELEMENTS else m[0], html_to_text(source))  # what it left
    return f"{lead}\n\n{body}".strip() if lead else body


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


def plain(doc: "Document") -> "Document":
    """`doc` with a plain-text body: the same object when its text holds no HTML (or its connector
    made it plain), else a copy whose text (and so content hash: stored markup is re-chunked
    once) is converted."""
    if doc.plain_text:
        return doc
    text = clean_text(doc.text)
    return doc if text == doc.text else doc.model_copy(update={"text": text})
