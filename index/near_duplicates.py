"""Near-duplicate passages: the same text, not merely the same template.

Invariant: two passages are near-duplicates when they hold the same message text with the same
facts. Most (`THRESHOLD`) of the smaller one's 5-word shingles must appear in the other, and
where the two texts align word by word, no stretch of one may stand in for a stretch of the other
holding a different number, date or identifier (a word with a digit in it, or a month's name):
weekly reports, form letters and tickets made from one template are different documents, while a
mail quoted in a reply, a forwarded copy or one file in two folders are one.

The comparison is on the message text (`message_text`): header lines (`From:`, `To:`, `Cc:`,
`Date:`, `Sent:`, `Subject:`...: inlet's own block at the head of a mail, and the ones a forward or
a reply quotes), forward and reply markers (`---------- Forwarded message ---------`,
`-----Original Message-----`, `On ... wrote:`) are left out, so a short mail and a bare forward of
it are one text however short. A chat transcript's line labels are left out the same way (a Slack
thread's `[2016-03-17 15:32 UTC] hamza: `, a Teams thread's `Hermione Granger (2024-03-17 15:32): `,
as the connectors write them), so a message that quotes another whole and adds a remark repeats it
however far apart the two were posted. Two mails or chat messages of their own (neither forwards
nor quotes anything) sent on different days are two documents even with the same text: a weekly
reminder sent three times is three mails (`sent`); the same text sent again that day, to someone
else, is a copy. A passage with fewer than `MIN_WORDS` words of message text (a one-line
"Thanks!") is compared whole, header lines and labels included: two people's same short reply are
two documents.

Whole documents (`document_marks`: their first `DOCUMENT_CHARS` characters) are compared by
`same_document`, which search asks only of two documents of the same time, to the second (the same
mail through two sources, or in two folders of one mailbox, whose matching passages may differ): the
same share of shingles, and facts that differ only where neither text has words the other lacks.
Two different mails of that second therefore stay two even when they share a passage (a long
disclaimer), and so do two documents of one template. It takes time linear in the texts, where
aligning two long texts word by word (a report repeating one table) could take minutes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from inlet.storage.lexical import words as lexical_words

SIZE = 5  # words per shingle
THRESHOLD = 0.7  # share of the smaller passage's shingles that must be in the other
MIN_WORDS = 10  # message text shorter than this is compared with its header lines
DOCUMENT_CHARS = 100_000  # of a whole document's text, what `document_marks` compares

_HEADER = re.compile(r"^[\s>]*(from|to|cc|bcc|date|sent|subject|reply-to)[ \t]*:", re.IGNORECASE)
_MARKER = re.compile(
    r"^[\s>]*(-{2,}.*\b(forwarded|original message)\b.*|begin forwarded message:?\s*|.{0,200}\bwrote:\s*)$",
    re.IGNORECASE,
)
_MARKER_END = re.compile(r"-{3,}\s*$")  # a marker wrapped over two lines: "... on 11/16/2000" / "02:51 PM -----"
_REPLY_START = re.compile(r"^[\s>]*on\s", re.IGNORECASE)  # "On Mon, Dec 6, 2026 at 6:12 PM Dana <" / "dana@x> wrote:"
_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")  # inlet writes a mail's Date as 2026-12-06 18:12 UTC
_CHAT_LABEL = re.compile(  # a chat message's line label: who posted it, and when
    r"(?:[ \t]*↳[ \t]*)?\[\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC\] [^\n]{0,200}?:(?: |$)"  # connectors/slack_render.py
    r"|[^\n:]{0,200}?\(\d{4}-\d{2}-\d{2} \d{2}:\d{2}\):(?: |$)"  # connectors/teams.py
)
_MONTHS = frozenset(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)


@dataclass(frozen=True)
class Marks:
    """What near-duplicate detection compares of a passage: the words of its message text, their
    shingles and, for a mail of its own, the day it was sent."""

    words: tuple[str, ...]
    shingles: frozenset[tuple[str, ...]]
    sent: str = ""  # the day heading a mail that forwards or quotes nothing (`sent`)


def message_text(text: str) -> str:
    """`text` without header lines (and their indented continuations), forward and reply markers, or
    chat line labels (the message after a label stays)."""
    kept: list[str] = []
    after: str | None = None  # the header line or marker just left out, if the line before was one
    for line in text.splitlines():
        label = _CHAT_LABEL.match(line)
        if label:
            after = None
            kept.append(line[label.end() :])
            continue
        if _HEADER.match(line) or _MARKER.match(line):
            if line.rstrip().endswith("wrote:") and kept and _REPLY_START.match(kept[-1]):
                kept.pop()  # the first half of a wrapped "On ... wrote:"
            after = line
            continue
        if after is not None and line.strip():
            if line[:1] in (" ", "\t") and _HEADER.match(after):
                continue  # a header line's folded continuation
            if _MARKER_END.search(line) and not _MARKER_END.search(after) and _MARKER.match(after):
                continue  # the second half of a wrapped marker
        after = None
        kept.append(line)
    return "\n".join(kept)


def sent(text: str) -> str:
    """The day of the `Date:` line heading `text` (inlet's header block), or of the chat line label
    it starts with, if `text` forwards or quotes nothing (no marker, no `>` line, no header line past
    its head, as an attached mail's): a mail or chat message of its own, which one of the same text
    on another day does not repeat (one sent again minutes later, to someone else, does)."""
    lines = text.lstrip("\n").splitlines()
    label = _CHAT_LABEL.match(lines[0]) if lines else None
    if label:
        said = [line[found.end() :] if (found := _CHAT_LABEL.match(line)) else line for line in lines]
        if any(_HEADER.match(line) or _MARKER.match(line) or line.lstrip().startswith(">") for line in said):
            return ""
        day = _DAY.search(label.group())
        return day.group() if day else ""
    head, _, rest = text.lstrip("\n").partition("\n\n")
    lines = head.splitlines()
    if not lines or not all(_HEADER.match(line) or line[:1] in (" ", "\t") for line in lines):
        return ""
    if any(_HEADER.match(line) or _MARKER.match(line) or line.lstrip().startswith(">") for line in rest.splitlines()):
        return ""
    dates = (_DAY.search(line) for line in lines if line.strip().lower().startswith("date"))
    return next((day.group() for day in dates if day), "")


def marks(text: str) -> Marks:
    """A passage's `Marks`, computed once per passage and compared with `near_duplicates`."""
    words = lexical_words(message_text(text))  # the index's words: an NFD copy of a passage is the same
    if len(words) < MIN_WORDS:
        words = lexical_words(text)
    if len(words) < SIZE:
        return Marks(tuple(words), frozenset([tuple(words)]), sent(text))
    return Marks(tuple(words), frozenset(zip(*(words[i:] for i in range(SIZE)))), sent(text))


def document_marks(text: str) -> Marks:
    """A whole document's `Marks`: those of its text's first `DOCUMENT_CHARS` characters, cut where
    a word ends (a copy's text cut a few words further on only has words the other lacks)."""
    if len(text) > DOCUMENT_CHARS:
        cut = text[: DOCUMENT_CHARS + 1]
        end = max(cut.rfind(" "), cut.rfind("\n"), cut.rfind("\t"))
        text = cut[:end] if end > 0 else cut[:DOCUMENT_CHARS]
    return marks(text)


def near_duplicates(a: Marks, b: Marks) -> bool:
    """The same text: most of the smaller one's shingles in the other, no fact differing, and not two
    mails of their own sent on different days."""
    if not a.shingles or not b.shingles or (a.sent and b.sent and a.sent != b.sent):
        return False
    if len(a.shingles & b.shingles) < THRESHOLD * min(len(a.shingles), len(b.shingles)):
        return False
    return not _facts_differ(a.words, b.words)


def same_document(a: Marks, b: Marks) -> bool:
    """Whole documents (`document_marks`) holding the same text: most of the smaller one's shingles
    in the other, not two mails of their own sent on different days, and no fact differing: where
    both texts leave their shared shingles at the same place, the words each has there (until the
    shared text resumes) do not each hold a fact the other's lack. Words only one text has are
    additions (a forward's dated note above one copy, an attachment read into the other, a file's
    size one source lists); week 14 -> week 15 is not."""
    if not a.shingles or not b.shingles or (a.sent and b.sent and a.sent != b.sent):
        return False
    if a.words == b.words:
        return True
    shared = a.shingles & b.shingles
    if len(shared) < THRESHOLD * min(len(a.shingles), len(b.shingles)):
        return False
    mine, theirs = _unshared_facts(a.words, shared), _unshared_facts(b.words, shared)
    return not any(mine[at] - theirs[at] and theirs[at] - mine[at] for at in mine.keys() & theirs.keys())


def _unshared_facts(
    words: tuple[str, ...], shared: frozenset[tuple[str, ...]]
) -> dict[tuple[str, ...] | None, set[str]]:
    """The facts of the stretches of `words` in none of the `shared` shingles, by where each starts:
    after which shared shingle (None: at the start). One pass over the words."""
    found: dict[tuple[str, ...] | None, set[str]] = {}
    last = -SIZE  # where the last shared shingle seen starts
    at: tuple[str, ...] | None = None  # where the stretch being read starts
    for i, word in enumerate(words):
        if i <= len(words) - SIZE or i == 0:
            if words[i : i + SIZE] in shared:
                last = i
        if i - last < SIZE:
            continue  # in a shared shingle
        if i == 0 or i - last == SIZE:  # a stretch starts here
            at = words[i - SIZE : i] if i >= SIZE else None
        if word in _MONTHS or any(ch.isdigit() for ch in word):
            found.setdefault(at, set()).add(word)
    return found


def _facts_differ(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether, aligned word by word, a stretch of `a` is replaced in `b` by one whose facts differ
    (week 14 -> week 15, 4120 pallets -> 3870). Words only one side has (a reply's own lines, the
    ends a chunk boundary cut) are additions, not differences."""
    if a == b:
        return False
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "replace":
            mine, theirs = _facts(a[i1:i2]), _facts(b[j1:j2])
            if mine and theirs and mine != theirs:
                return True
    return False


def _facts(words: tuple[str, ...]) -> set[str]:
    return {w for w in words if w in _MONTHS or any(ch.isdigit() for ch in w)}
