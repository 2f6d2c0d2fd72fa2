"""Mail bodies as retrievable text: the new content of a message, not the thread it quotes.

Replies carry the whole chain below them ("-----Original Message-----", "On ... wrote:", `>`
lines, Outlook's From:/Sent: block); indexing that again in every reply drowns search in
duplicates. `new_content` keeps what the sender wrote, wherever it is (answers between quoted
lines too), drops the signature, and keeps the quote when it is all there is. Only real quoted
history is trimmed: an attribution or header block over quoted text (a client's, naming an
address or with `>` lines below), never text that merely looks like one (an itinerary's From:/To:
lines, a sentence ending "wrote:"): losing a message's own words is worse than indexing a quote
twice, so a note announcing answers written into the quote ("see my answers in red below") keeps
it. Of a body's plain and HTML forms the plain one is read unless the HTML says clearly more
(`chosen_body`). A forwarded message (Gmail's, Apple's, Lotus Notes' banner; Outlook's block under a FW:
subject) is content, kept after the note: its recipient has no other copy of it; its header blocks
made short (`_tidy_heads`). In the sender's text and every message it forwards alike, signatures
(from a `-- ` line; a contact card's phone and address lines) and legal notices are no content
(`_without_boilerplate`). A subject
is plain text too (`plain_subject`): its markup dropped, other text in angle brackets kept.

Also RFC 822 parsing, lenient the way mail needs: a header reads as its sender meant it whatever
its charset claims (`header_text`, never an error), a multipart whose boundary matches none of its
lines is parsed with the boundary its parts use (`rebounded`), and a body part is text or an
`ItemError` saying why it is left out, never its undecoded transfer encoding (`part_text`). Charset
labels are read as the WHATWG Encoding Standard reads them (`extract.in_charset`), in bodies and
headers, as mail clients read them: iso-8859-1 and us-ascii as Windows-1252, and bytes so labelled
that are valid UTF-8 as UTF-8.
"""

from __future__ import annotations

import base64
import datetime as dt
import html as html_lib
import quopri
import re
from email import policy
from email.errors import HeaderParseError, InvalidBase64CharactersDefect, InvalidBase64LengthDefect
from email.header import decode_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import partial

from inlet.errors import ItemError

from .extract import decode, html_to_text, in_charset, looks_binary
from .model import normal_user

_FORWARD = [  # a forwarded message's banner: what follows is the forwarded message, kept
    re.compile(r"^-{2,}\s*forwarded (by|message)\b", re.I),  # Gmail, Thunderbird, Lotus Notes
    re.compile(r"^-*\s*begin forwarded message:?\s*-*$", re.I),  # Apple Mail
]
_ORIGINAL = re.compile(r"^-{2,}\s*original message\s*-{2,}", re.I)  # Outlook: a reply's, or under FW:, a forward's
_RULE = re.compile(r"^_{10,}\s*$")  # Outlook's rule above the quoted message's header block
_WROTE_END = re.compile(r"^.{0,200}\bwrote:\s*$", re.I)  # "On Mon, Bob <b@x> wrote:", "b@x wrote:"
# An attribution a mail client wrapped: "On Mon, Dec 7, 2026 at 10:00 AM Alice <a@x>" / "wrote:"
_WROTE = re.compile(r"^(<?\S+@\S+>?\s+)?wrote:\s*$", re.I)
_ATTRIBUTION_START = re.compile(r"^On\b(?=.*\d).{6,200}$")
_HEADER_START = re.compile(r"^\*{0,2}from:\*{0,2}\s", re.I)
_HEADER_NEXT = re.compile(r"^\*{0,2}(sent|date|to):\*{0,2}\s", re.I)
_HEADER_MAIL = re.compile(r"^\*{0,2}(sent|sent by|subject|cc):", re.I)  # only a mail's header block has these
# A forward's subject: "Fwd:", "FW:", and Outlook's in German, French, Spanish/Italian, Portuguese, Nordic
_FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|wg|tr|rv|enc|vs|vb)\s*(\[\d+\])?\s*:", re.I)
_MBOX_FROM = re.compile(r"^>+From ")  # an mbox's escape of a body line starting "From "
_SIGNATURE = [
    re.compile(r"^--\s*$"),
    re.compile(r"^sent from my (iphone|ipad|blackberry|android|mobile|samsung)", re.I),
    re.compile(r"^get outlook for (ios|android)", re.I),
]


def normalise(text: str) -> str:
    """Tidy a body: no trailing spaces, at most one blank line in a row."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def new_content(text: str, subject: str = "") -> str:
    """The part of a body its sender wrote, with every message it forwards; the whole body when
    nothing new precedes the quote; in either, no signature or legal notice (`_without_boilerplate`).
    `subject` tells an Outlook forward (FW:) from a reply."""
    full = normalise(text)
    fresh = normalise("\n".join(_own(full.split("\n"), _is_forward(subject))))
    kept = fresh if fresh else full
    return _without_boilerplate(kept) or kept


def _is_forward(subject: str) -> bool:
    """Whether a subject is a forward's ("Fwd: x", "FW: RE: x"; "RE: FW: x" is a reply)."""
    return _FORWARD_SUBJECT.match(subject) is not None


def _own(lines: list[str], forward: bool) -> list[str]:
    """The lines of a message its sender wrote (answers between quoted lines too), then the message
    it forwards, whole: the recipient has no other copy of it. Reply history ends it: an Original
    Message rule, a rule or a header block over a quoted mail, an attribution with an address over
    unquoted history, a signature (a forward below one is still kept)."""
    kept: list[str] = []
    n = 0
    while n < len(lines):
        line = lines[n].strip()
        if line.startswith(">"):  # a quoted line, whatever it quotes
            if _MBOX_FROM.match(line) and not (_quoted(_previous_text(lines, n)) or _quoted(_next_text(lines, n + 1))):
                kept.append(line[1:])  # an mbox writer's ">From " amid no quote: the sender's line
            n += 1
            continue
        if not _notable(line):  # most lines: nothing below can match them
            kept.append(lines[n])
            n += 1
            continue
        if n > 0 and any(p.match(line) for p in _SIGNATURE):
            at = next((k for k in range(n + 1, len(lines)) if _boundary(lines, k, forward) == "forward"), None)
            return kept if at is None else _with_forward(kept, lines[at:])
        kind = _boundary(lines, n, forward)
        if kind == "forward":
            return _with_forward(kept, lines[n:])
        if kind == "history":
            return _with_answers(kept, lines[n:])
        span = _attribution(lines, n)
        if span:
            after = _next_text(lines, n + span)
            if after.startswith(">"):  # quoted below: the answers between the quoted lines are kept
                n += span
                continue
            if "@" in " ".join(lines[n : n + span]):  # a client's attribution over unquoted history
                return _with_answers(kept, lines[n:])
        kept.append(lines[n])
        n += 1
    return kept


# A note saying its answers are written into the quoted mail ("see my answers in red below",
# "comments inline"): Outlook marks them by colour or a tag, not by `>`, so they sit in what looks
# like unchanged history
_ANSWERS_INSIDE = re.compile(
    r"\b(answers?|answered|responses?|responded|replies|replied|comments?|commented|notes|remarks|thoughts)\b"
    r"[^\n]{0,40}?\b(inline|in-line|interspersed|below|in (red|blue|green|purple|orange|bold|caps|colou?r))\b"
    r"|\b(inline|in-line)\b[^\n]{0,20}?\b(answers?|responses?|replies|comments?)\b",
    re.I,
)


def _with_answers(kept: list[str], history: list[str]) -> list[str]:
    """The sender's lines, and the history below them too when they say their answers are written
    into it (`_ANSWERS_INSIDE`): losing the answers is worse than indexing a quote twice."""
    return kept + history if _ANSWERS_INSIDE.search("\n".join(kept)) else kept


_NOTABLE_STARTS = ("-", "_", "*", "from", "begin", "sent from", "get outlook", "on")


def _notable(line: str) -> bool:
    """Whether a stripped line may be a signature, banner, rule, header or attribution line:
    what these start or end with, checked before the patterns that tell them apart."""
    return line.lower().startswith(_NOTABLE_STARTS) or line[-6:].lower() == "wrote:"


FORWARDED_HEADING = "## Forwarded message"


def _with_forward(note: list[str], forwarded: list[str]) -> list[str]:
    """A note and the message it forwards (its header blocks tidied: `_tidy_heads`), under a
    heading of its own (a passage apart from the note, as an attachment's is) when there is a note."""
    forwarded = _tidy_heads(forwarded)
    if not "".join(note).strip():
        return forwarded
    return [*note, "", FORWARDED_HEADING, "", *forwarded]


SHOWN_RECIPIENTS = 8  # past this, a mail's To and Cc lines name the first ones and count the rest
QUOTED_RECIPIENTS = 3  # the same, in the header block of a mail forwarded or quoted in a body

_HEAD_FIELD = re.compile(r"^\*{0,2}(from|to|cc|bcc|sent|sent by|date|subject):\*{0,2}(\s|$)", re.I)
_RECIPIENTS = re.compile(r"^(\*{0,2}(?:to|cc|bcc):\*{0,2})\s*(.*)$", re.I)
_RULE_RUN = re.compile(r"-{3,}")
_RULE_END = re.compile(r"-{3,}\s*$")
_WRAPPED_RULE = re.compile(r"^(?!\S+:\s).{0,60}?-{3,}$")  # a banner's end its sender's client wrapped: "11:28 AM -----"


def first_named(names: list[str], limit: int) -> str:
    """The first `limit` of `names`, and how many more there are: "a, b and 3 more"."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _tidy_heads(lines: list[str]) -> list[str]:
    """Forwarded mail with its header blocks made short, so that a passage holding one holds the
    message it introduces too: a banner (its wrapped end joined) with its rules of dashes as "--"
    (each dash is a token), and in a block of two header fields or more, a To/Cc/Bcc field (its
    wrapped lines joined) naming its first `QUOTED_RECIPIENTS` recipients and counting the rest."""
    out: list[str] = []
    n = 0
    while n < len(lines):
        line = lines[n].strip()
        if any(p.match(line) for p in _FORWARD) or _ORIGINAL.match(line):
            wrapped = n + 1 < len(lines) and _WRAPPED_RULE.match(lines[n + 1].strip()) and not _RULE_END.search(line)
            out.append(_RULE_RUN.sub("--", f"{line} {lines[n + 1].strip()}" if wrapped else line))
            n += 2 if wrapped else 1
        elif _HEAD_FIELD.match(line):
            fields, end = _head_fields(lines, n)
            out += [_short_field(f) for f in fields] if len(fields) > 1 else lines[n:end]
            n = end
        else:
            out.append(lines[n])
            n += 1
    return out


def _head_fields(lines: list[str], n: int) -> tuple[list[str], int]:
    """The header fields from line `n` to the first line that is none (a recipient list's wrapped
    lines joined to it), and the line after them."""
    fields: list[str] = []
    while n < len(lines) and (line := lines[n].strip()):
        if _HEAD_FIELD.match(line):
            fields.append(line)
        elif fields and _RECIPIENTS.match(fields[-1]) and ("@" in line or fields[-1][-1:] in ",;"):
            fields[-1] += " " + line
        else:
            break
        n += 1
    return fields, n


def _short_field(field: str) -> str:
    """A To/Cc/Bcc field naming its first `QUOTED_RECIPIENTS` recipients; another field as it is."""
    found = _RECIPIENTS.match(field)
    if not found:
        return field
    names = [name.strip() for name in re.split(r"[,;]", found[2]) if name.strip()]
    return f"{found[1]} {first_named(names, QUOTED_RECIPIENTS)}".rstrip()


def _boundary(lines: list[str], n: int, forward: bool) -> str | None:
    """'forward' where a forwarded message starts at line `n`, 'history' where reply history does."""
    line = lines[n].strip()
    if any(p.match(line) for p in _FORWARD):
        return "forward"
    rule = _RULE.match(line) and _HEADER_START.match(_next_text(lines, n + 1))
    if _ORIGINAL.match(line) or rule or _header_block(lines, n):
        return "forward" if forward else "history"
    return None


def _header_block(lines: list[str], n: int) -> bool:
    """A quoted mail's header block starts at line `n`: "From:" with an address or followed by
    "Sent:"/"Subject:"/"Cc:" (an itinerary's From:/To:/Date: lines are not one), and another header
    line right below it."""
    line = lines[n].strip()
    if not _HEADER_START.match(line):
        return False
    following = [x.strip() for x in lines[n + 1 : n + 16]]  # a long To: list wraps over lines
    if not any(_HEADER_NEXT.match(x) for x in following[:3]):
        return False
    return "@" in line or any(_HEADER_MAIL.match(x) for x in following)


def _attribution(lines: list[str], n: int) -> int:
    """How many lines an attribution ("On Mon, Bob <b@x> wrote:") at line `n` spans: 0, 1 or 2."""
    line = lines[n].strip()
    if _WROTE_END.match(line):
        return 1
    if _ATTRIBUTION_START.match(line) and n + 1 < len(lines) and _WROTE.match(lines[n + 1].strip()):
        return 2
    return 0


def _next_text(lines: list[str], n: int) -> str:
    return next((x.strip() for x in lines[n : n + 3] if x.strip()), "")


def _quoted(line: str) -> bool:
    """A line of a quote: `>` before it, and not an mbox writer's escaped "From " line."""
    return line.startswith(">") and not _MBOX_FROM.match(line)


def _previous_text(lines: list[str], n: int) -> str:
    return next((x.strip() for x in reversed(lines[max(0, n - 2) : n]) if x.strip()), "")


def body_text(html: str | None, plain: str | None, subject: str = "") -> str:
    """Clean new content from whichever body the message has (`chosen_body`)."""
    return new_content(chosen_body(html, plain)[0], subject)


def chosen_body(html: str | None, plain: str | None) -> tuple[str, bool]:
    """The text of a message's body, and whether it is its HTML's. Of a message with both (the two
    forms of one body in a multipart/alternative) the plain one, unless the HTML one says what it
    does not (`_richer`): a stub ("view this message in an HTML capable client") or a shortened
    text part loses nothing (RFC 2046 puts the richer form last; every client shows it). A plain
    body is read with Outlook's plain-text conventions undone (`without_outlook_marks`)."""
    text = plain if plain and plain.strip() else None
    if html:
        converted = html_to_text(html)
        if text is None or _richer(converted, text):
            return converted, True
    return without_outlook_marks(text or ""), False


_WORD = re.compile(r"\w+")


def _richer(html_text: str, plain: str) -> bool:
    """Whether an HTML body's text says what the plain one does not: it is no shorter, and more
    than a third of its distinct words (three at least) are not in the plain text. Two forms of
    one body share nearly all their words, whatever their layout and links; a short HTML part
    beside a plain body (a gateway's disclaimer) is no richer form of it."""
    words, ours = _WORD.findall(html_text.lower()), _WORD.findall(plain.lower())
    theirs = set(words)
    missing = theirs - set(ours)
    return len(words) >= len(ours) and len(missing) >= 3 and 3 * len(missing) > len(theirs)


_CID = re.compile(r"\[cid:[^\]\s]*\](?:<[a-z][a-z0-9+.-]*:[^<>\s]*>)?", re.I)  # a picture, and a link on it
_MAILTO = re.compile(r"(\S+@[^\s<>]+)<mailto:\1>", re.I)
_LINKED = re.compile(r"(?<=[^\s<>(\[])<((?:https?|ftp|mailto):[^<>\s]+)>", re.I)


def without_outlook_marks(text: str) -> str:
    """A plain body as Outlook writes one, read as its HTML reads: a picture's `[cid:...]`
    placeholder left out (with a link on it), `name@x<mailto:name@x>` as the address, a link's
    `text<url>` as "text (url)", as `html_to_text` writes links."""
    return _LINKED.sub(r" (\1)", _MAILTO.sub(r"\1", _CID.sub("", text)))


def unflowed(text: str, delsp: bool) -> str:
    """A `format=flowed` body (RFC 3676) as its sender wrote it: a line ending in a space (a soft
    break, "-- " aside) joins the next line of the same quote depth, its trailing space dropped
    too when `delsp` (the sender's client broke a word or CJK text there), and a stuffed line
    (a space before its text) loses that space."""
    out: list[str] = []
    joining = False
    for line in text.replace("\r\n", "\n").split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        body = body[1:] if body.startswith(" ") else body  # space-stuffed
        if joining and out and _depth(out[-1]) == depth:
            out[-1] += body
        else:
            out.append(">" * depth + (" " if depth and body else "") + body)
        joining = body.endswith(" ") and body != "-- "
        if joining and delsp:
            out[-1] = out[-1][:-1]
    return "\n".join(out)


def _depth(line: str) -> int:
    return len(line) - len(line.lstrip(">"))


# --- RFC 822 --------------------------------------------------------------------------------------
_PARSER = BytesParser(policy=policy.default)


# What some writers put before a message's headers: a UTF-8 byte order mark (PowerShell's
# `Out-File -Encoding UTF8`, "UTF-8 with BOM" editors), blank lines (export scripts)
_LEAD = re.compile(rb"\A(?:\xef\xbb\xbf)?(?:[ \t]*\r?\n)*")


def parse_rfc822(raw: bytes) -> EmailMessage:
    """A message, read from its headers: a byte order mark or blank lines before them are not its
    body (read as one, the message had no subject, no sender and its headers as text)."""
    return _PARSER.parsebytes(_LEAD.sub(b"", raw, count=1))  # type: ignore[return-value]


def looks_like_mail(head: bytes) -> bool:
    """Cheap sniff: a header block with at least two of the usual fields, before any blank line
    (a byte order mark or blank lines before it aside, as `parse_rfc822` reads them)."""
    head = _LEAD.sub(b"", head, count=1)
    header = head.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    names = {m.lower() for m in re.findall(rb"^([A-Za-z-]+):", header, re.M)}
    return len(names & {b"from", b"to", b"subject", b"date", b"message-id", b"received"}) >= 2


def raw_header(email: EmailMessage, name: str) -> str:
    """A header's value as it was sent (8-bit bytes kept as surrogates), unfolded; "" when absent."""
    value = next((v for k, v in email.raw_items() if k.lower() == name.lower()), "")
    return " ".join(str(value).split())


MAX_HEADER_CHARS = 4096  # of a header decoded as text: the stdlib's decoding of broken words is quadratic


def header_text(value: str) -> str:
    """A raw header value as its sender meant it: 8-bit bytes as UTF-8, else Windows-1252, and
    RFC 2047 words in their charset, else the same guesses (an unknown or wrong charset reads as
    written, never as U+FFFD), its first `MAX_HEADER_CHARS`. Never raises: a word that cannot be
    decoded is kept as it is."""
    text = _unescaped(value[:MAX_HEADER_CHARS])
    try:
        words = decode_header(_backslashes_kept(text))
    except (HeaderParseError, ValueError):  # a broken word: each word decoded on its own
        return text if len(text.split()) < 2 else " ".join(header_text(word) for word in text.split())
    return "".join(word if isinstance(word, str) else _word(word, charset) for word, charset in words)


_ENCODED_WORD = re.compile(r"=\?[^?]*\?[qQbB]\?.*?\?=")  # RFC 2047: =?charset?encoding?text?=


def _backslashes_kept(text: str) -> str:
    """`text` with each backslash outside encoded words written as an escape: `decode_header` hands
    back the text between encoded words as raw-unicode-escape bytes, which `_word` decodes, and a
    literal "\\u003c" would come back as "<"."""
    if not _ENCODED_WORD.search(text):
        return text  # returned as it is, never escaped
    parts, last = [], 0
    for word in _ENCODED_WORD.finditer(text):
        parts += [text[last : word.start()].replace("\\", "\\u005c"), word.group(0)]
        last = word.end()
    return "".join(parts) + text[last:].replace("\\", "\\u005c")


def _unescaped(value: str) -> str:
    """A raw header's 8-bit bytes (kept by the parser as surrogates) read as text."""
    return decode(value.encode("utf-8", "surrogateescape"))


def _word(data: bytes, charset: str | None) -> str:
    if charset and (text := in_charset(data, charset)) is not None:
        return text
    try:  # unencoded runs come back as raw-unicode-escape bytes
        return data.decode("raw-unicode-escape") if charset is None else decode(data)
    except UnicodeDecodeError:
        return decode(data)


# HTML elements a subject's markup is made of; inline ones go without a trace ("<b>Q3</b>" is "Q3"),
# others leave a space
_INLINE = frozenset("a abbr b bdi bdo big cite code del dfn em font i ins kbd mark q s samp small span".split())
_INLINE |= frozenset("strike strong sub sup time tt u var".split())
_ELEMENTS = _INLINE | frozenset(
    "address area article aside audio base blink blockquote body br button canvas "
    "caption center col colgroup dd details dialog div dl dt embed fieldset figure footer form frame h1 h2 h3 h4 "
    "h5 h6 head header hr html iframe img input label li link main marquee math meta nav noscript object ol option "
    "p picture pre script section select source style svg table tbody td template textarea tfoot th thead title "
    "tr ul video wbr".split()
)
# A tag: its name (a custom element's has a hyphen), then attributes apart by space or "/", as a browser reads them
_TAG = re.compile(
    r"""<(/?)([a-z][a-z0-9]*+(?:-[a-z0-9._-]*+)?+)"""
    r"""((?:[\s/]++[^\s"'<>/=]++(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s"'<>]++))?+)*+)\s*+(/?)>""",
    re.I,
)
_CODE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->", re.I | re.S)
_MAX_PASSES = 8  # of markup removal: entities read after one can be markup again ("&lt;b&gt;")


def plain_subject(subject: str) -> str:
    """A subject as the plain text a title is: markup dropped and its entities read ("<b>Q&amp;A</b>
    plan" is "Q&A plan", `<img src=x onerror=...>` is nothing), again until no markup is left (what
    the entities spelled is markup too), whitespace collapsed, at most `MAX_HEADER_CHARS`. Markup is
    a comment, a script or style element whole, a tag with a valued attribute (`<a href=...>`,
    `<svg/onload=...>`, `<x-foo onclick=...>`) and an HTML element's tag that closes itself
    (`<br/>`) or whose element has both its tags in the subject; anything else in angle brackets is
    text ("<TICKET-12>", "a < b and c > d", "the <div> bug"). A subject still holding markup after
    `_MAX_PASSES` loses its angle brackets."""
    text = subject[:MAX_HEADER_CHARS]
    for _ in range(_MAX_PASSES):
        text, code = _CODE.subn(" ", text)
        markup = _markup_at(text)
        if not (markup or code):
            return " ".join(text.split())
        text = html_lib.unescape(_TAG.sub(partial(_without_tag, markup=markup), text))
    return " ".join(re.sub(r"[<>]", " ", text).split())


def _markup_at(text: str) -> set[int]:
    """Where in `text` the tags `plain_subject` drops start."""
    tags = list(_TAG.finditer(text))
    known = [m for m in tags if m[2].lower() in _ELEMENTS]
    both = {m[2].lower() for m in known if not m[1]} & {m[2].lower() for m in known if m[1] and not m[3]}
    valued = {m[2].lower() for m in tags if "=" in m[3]}
    return {
        m.start()
        for m in tags
        if "=" in m[3]
        or (m[1] and m[2].lower() in valued)
        or (m[2].lower() in _ELEMENTS and (m[4] or m[2].lower() in both))
    }


def _without_tag(tag: re.Match[str], markup: set[int]) -> str:
    if tag.start() not in markup:
        return tag[0]
    return "" if tag[2].lower() in _INLINE else " "


def addresses(value: str | None) -> list[tuple[str, str]]:
    """[(name, email)] of a raw header (`raw_header`), names decoded (`header_text`), tolerant of the
    malformed ones archives are full of."""
    if not value:
        return []
    try:
        pairs = getaddresses([_unescaped(" ".join(value.split()))])
    except Exception:  # noqa: BLE001 - email's header parser raises assorted errors on junk
        return []
    return [(" ".join(header_text(name).split()), normal_user(email)) for name, email in pairs if "@" in email]


def header_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(str(value))
        when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
        when.astimezone(dt.timezone.utc)  # "31 Dec 9999 23:59 -2359" is past the last representable day
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when


def part_text(part: EmailMessage) -> str:
    """A body part's text, decoded with its charset (UTF-8 when none) or, failing that, our usual
    guesses. Base64 the stdlib could not decode (a character past the last whole group) is decoded
    up to that group; a multipart no boundary split is its payload less boundary-looking lines.
    `ItemError` when no text is left: corrupt base64 that decodes to no text in the part's charset,
    binary bytes labelled text, an empty multipart."""
    if part.get_content_maintype() == "multipart":
        return _unsplit_text(part)
    payload = payload_bytes(part)
    if not isinstance(payload, bytes):
        return str(payload or "")
    if any(isinstance(d, InvalidBase64LengthDefect) for d in part.defects):
        payload = _whole_groups(part)
    text = in_charset(payload, part.get_content_charset() or "utf-8-sig")
    corrupt = any(isinstance(d, (InvalidBase64CharactersDefect, InvalidBase64LengthDefect)) for d in part.defects)
    if corrupt and (text is None or looks_binary(text)):
        raise ItemError(f"a {part.get_content_type()} part's base64 is corrupt (it decodes to no text): left out")
    text = decode(payload) if text is None else text
    if looks_binary(text):
        raise ItemError(f"a {part.get_content_type()} part holds binary bytes, not text: left out")
    return text


# A quoted-printable line's trailing white space, which RFC 2045 §6.7 (rule 3) has the reader
# delete: transport agents add it, and after a soft break's "=" it hid the break ("sand= " + CRLF)
_QP_PADDING = re.compile(r"[ \t]+(?=\r?\n|\Z)")


def payload_bytes(part: EmailMessage) -> bytes | None:
    """A part's payload with its transfer encoding undone (what `get_payload(decode=True)` gives),
    a quoted-printable one without the padding transport agents add at its lines' ends."""
    raw = None
    if str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "quoted-printable":
        raw = part.get_payload(decode=False)  # (of another encoding, read in the part's charset: no bytes)
    if isinstance(raw, str):
        return quopri.decodestring(_QP_PADDING.sub("", raw).encode("ascii", "surrogateescape"))
    decoded = part.get_payload(decode=True)
    return decoded if isinstance(decoded, bytes) else None


def _whole_groups(part: EmailMessage) -> bytes:
    """The bytes of a base64 payload's whole 4-character groups (what is past them is dropped)."""
    raw = part.get_payload(decode=False)
    letters = re.sub(rb"[^A-Za-z0-9+/]", b"", str(raw).encode("ascii", "replace"))
    return base64.b64decode(letters[: len(letters) // 4 * 4])


# "--token" opening a part: a header or an empty line (a part with no headers) follows it
_PART_START = re.compile(rb"^--(\S{1,70}?)[ \t]*\r?\n(?=[A-Za-z0-9-]+:|\r?\n)", re.M)
_BOUNDARY_ONLY = re.compile(r"^--\S+[ \t\r]*$", re.M)


def rebounded(part: EmailMessage) -> EmailMessage | None:
    """A multipart whose declared boundary (or none) matches none of its lines, parsed again with
    the boundary its parts open with; None when no line opens a part."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or (found := _PART_START.search(payload)) is None:
        return None
    head = f'Content-Type: {part.get_content_type()}; boundary="{found[1].decode("ascii", "replace")}"\r\n\r\n'
    fixed = parse_rfc822(head.encode() + payload)
    return fixed if fixed.is_multipart() else None


def _unsplit_text(part: EmailMessage) -> str:
    payload = part.get_payload(decode=True)
    text = _BOUNDARY_ONLY.sub("", decode(payload)).strip() if isinstance(payload, bytes) else ""
    if not text:
        raise ItemError("a multipart body whose boundary matches none of its lines holds no text: left out")
    return text


# --- boilerplate: signatures and legal notices, in the sender's text and every message it forwards ---

# A legal notice's phrases ("This message is for the designated recipient only and may contain
# privileged ... information. If you have received it in error, please notify the sender ...")
_NOTICE_ADDRESSEE = re.compile(
    r"\b(intended|designated|named)\s+(recipient|addressee)s?\b|\bintended (only|solely)\s+for\b"
    r"|\breceived\s+(this|it|the)?\s*([\w-]+\s+){0,3}in\s+error\b",
    re.I,
)
_NOTICE_PHRASES = [
    re.compile(r"\bnotify\s+(the\s+sender|us|me)\b", re.I),
    re.compile(r"\b(privileged|confidential)\b", re.I),
    re.compile(r"\b(prohibited|unauthori[sz]ed)\b", re.I),
    re.compile(r"\b(delete|destroy)\s+(it|this|the\s+original|all\s+copies|the\s+(e-?mail|message))\b", re.I),
]
MAX_NOTICE_CHARS = 2000  # a paragraph longer than this is no appended notice, whatever it says
_CARD_LINE_CHARS = 60  # a signature's lines are short
_CARD_LINES = 10  # and few (under the name)
_SIGN_OFF = re.compile(r"^(thanks|thank you|many thanks|regards|best|cheers|sincerely|yours|rgds|br)\b", re.I)
_NAME_WORD = re.compile(r"^([A-Z][\w'’-]*\.?|[A-Z]\.|de|la|le|van|von|der|den|du|di|da|del|dos|bin|al)$")
_CONTACT = re.compile(r"^(e-?mail\s*:?\s*)?[\w.+'-]+@[\w-]+(\.[\w-]+)+$", re.I)  # an address alone
_DIGIT = re.compile(r"\d")


def _without_boilerplate(text: str) -> str:
    """`text` without what a mail client or gateway appends to each message in it (the sender's
    and every one it forwards or quotes): a legal notice (`_notice`), a signature after its `-- `
    line (or "Sent from my iPhone") to the end of its message, and the phone and address lines of
    a contact card closing a message (`_card`)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    kept: list[str] = []
    signed = False  # within a message, past its signature line
    for n, paragraph in enumerate(paragraphs):
        lines = paragraph.split("\n")
        if _part_start(lines):
            signed = False
        if signed or _notice(paragraph):
            continue
        at = next((k for k, line in enumerate(lines) if any(p.match(line.strip()) for p in _SIGNATURE)), None)
        if at is not None:
            signed, lines = True, lines[:at]
        elif _closes_message(paragraphs, n):
            lines = _card(lines)
        if "".join(lines).strip():
            kept.append("\n".join(lines))
    return "\n\n".join(kept)


def _part_start(lines: list[str]) -> bool:
    """Whether a paragraph starts a message of its own: a forward's banner or heading, a rule or a
    header block over a quoted mail."""
    return lines[0].strip() == FORWARDED_HEADING or _boundary(lines, 0, True) is not None


def _closes_message(paragraphs: list[str], n: int) -> bool:
    """Whether paragraph `n` is the last of its message: what follows it is notices, then another
    message or nothing."""
    rest = (p for p in paragraphs[n + 1 :] if not _notice(p))
    after = next(rest, None)
    return after is None or _part_start(after.split("\n"))


def _notice(paragraph: str) -> bool:
    """Whether a paragraph is a legal notice: it names its addressee ("the intended recipient") or
    a mail received in error, and two more of a notice's phrases (notify the sender, privileged or
    confidential, prohibited, delete the original)."""
    if len(paragraph) > MAX_NOTICE_CHARS or not _NOTICE_ADDRESSEE.search(paragraph):
        return False
    return sum(1 for p in _NOTICE_PHRASES if p.search(paragraph)) >= 2


def _card(lines: list[str]) -> list[str]:
    """A paragraph without the phone numbers and addresses (`_contact`) of the contact card closing
    it: short lines under the sender's name (a sign-off above it). The name, title, company and
    town stay: who wrote, for whom ("Client Relations, Cal ISO" may be all that says where a
    mail is from)."""
    start = len(lines)
    while (
        start
        and len(lines[start - 1].strip()) <= _CARD_LINE_CHARS
        and not lines[start - 1].rstrip().endswith((".", "!", "?", ":", ";"))
    ):
        start -= 1
    run = [line.strip() for line in lines[start:]]
    name = next((k for k, line in enumerate(run) if line and not _SIGN_OFF.match(line)), None)
    card = run[name + 1 :] if name is not None else []
    if name is None or len(card) > _CARD_LINES or not _named(run[name]) or not any(_contact(x) for x in card):
        return lines
    return lines[: start + name + 1] + [line for line in lines[start + name + 1 :] if not _contact(line.strip())]


def _named(line: str) -> bool:
    """Whether a line is a person's name: up to five words, capitalised (or a particle: "de la")."""
    words = line.split()
    return 0 < len(words) <= 5 and all(_NAME_WORD.match(w) for w in words) and not _DIGIT.search(line)


def _contact(line: str) -> bool:
    """A signature's phone line (seven digits or more, a few words of label) or an address alone."""
    digits = len(_DIGIT.findall(line))
    return digits >= 7 and len(re.findall(r"[A-Za-z]+", line)) <= 4 or bool(_CONTACT.match(line))
