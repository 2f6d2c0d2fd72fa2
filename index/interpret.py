"""What a question asks beyond its words: time phrases, source words and people the index knows.

Invariant: an interpretation only narrows or reorders what the plain query would find. Rules, no
model: time phrases ("yesterday", "last week", "in March 2001", "between January and March",
"on 12 March 2001", "10/29/2001", "since 2000", "since yesterday") become an `after` / `before`
window measured from the question's time, and ending there when that time is given; source words
("in Slack", "the email", "the doc", "SharePoint"; every phrase of them: "the email in my inbox")
become a `source_types` filter limited to the types the index holds; a phrase its clause denies
("not in Slack", `negated`) becomes none, and is not searched for either; names of served
documents' authors, senders or participants ("what did Phillip say", "emails from jsmith",
"Phillip's email") become people whose documents are preferred (a name many people share means the
one most of its documents belong to), every name of theirs the question matched, and reported once
per person, by the address the index knows (`People.person`). Only the people the caller may see a
document of count, by the documents of theirs the caller sees (`Sight`): what documents hidden from
the caller hold changes nothing of their interpretation. Recency words ("latest", "newest", "most
recent") are no topic: they leave the query, as the filter phrases do, and ask for the newest
documents (`newest`, reported as `"sort": "newest"`); a bare "recent" before another noun says
which of a thing the topic is ("recent graduates") and stays. `topic` says whether anything is
left to search for beyond the filters, the people named, the recency words and kinds of document
("the latest email from Phillip" has none); the name of someone the caller may not see is a topic,
as a name no one has. The caller runs the plain query when the filters would leave nothing.
"""

from __future__ import annotations

import calendar
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from inlet.connectors.model import iso_time

from .relevance import content_terms

if TYPE_CHECKING:
    from .store import Index

log = logging.getLogger(__name__)
_MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): n for n, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9  # the usual US abbreviation ("Sept. 5")
_MONTHS.pop("may", None)  # "may" is a verb far more often than a month: only "in May" / "May 2001"
_MONTH_RE = "|".join(sorted((*_MONTHS, "may"), key=len, reverse=True))
_YEAR = r"(19[89]\d|20\d\d)"

_MAIL_WORDS = r"inbox|mailbox|e-?mails?|mails?|messages?|folders?"
_IN_MY = r"(?:in|from|via|on)\s+(?:my\s+|his\s+|her\s+|their\s+|our\s+)?"  # "in my Outlook"
_NOT_AFTER_CHANGE = "".join(
    rf"(?<!\b{word}\s)" for word in ("change", "changes", "changed", "shift", "shifts", "swing", "turn", "improvement")
)
# Source words -> the source types they name (only those the index holds are used).
SOURCE_WORDS: dict[str, tuple[str, ...]] = {
    "slack": ("slack", "slack_export"),
    "teams": ("teams",),
    "mail": ("outlook", "gmail", "mail_archive"),
    "outlook": ("outlook",),
    "gmail": ("gmail",),
    "drive": ("google_drive", "microsoft_files", "files"),
    "google": ("google_drive",),
    "microsoft": ("microsoft_files",),
}
_SOURCE_PATTERNS: list[tuple[re.Pattern[str], str, bool]] = [  # (words, source word, cut from the query)
    (
        re.compile(r"\b(?:in|on|from|via)\s+slack\b|\bslack\s+(?:message|thread|channel|post|dm|chat)s?\b", re.I),
        "slack",
        True,
    ),
    # "teams" is also a plural noun ("the reorg's impact on teams", "in teams of two"): after a
    # preposition it is the service only capitalised or with "MS"/"Microsoft", and not before "of".
    (
        re.compile(
            r"\b(?:in|on|from|via)\s+(?:(?:ms|microsoft)\s+teams|(?-i:Teams))\b(?!\s+of\b)"
            r"|\bteams\s+(?:message|thread|channel|post|chat)s?\b",
            re.I,
        ),
        "teams",
        True,
    ),
    # A mail service by name means it alone, as "SharePoint" and "Google Docs" do. "Gmail" is always
    # the service; "outlook" is also a noun ("the outlook for next year", "a change in outlook for
    # gas"), so it is the service only as a place mail is in ("in Outlook", "from my Outlook") or
    # before a word of mail ("Outlook inbox", "Outlook email"), and not after a word of change ("a
    # change in outlook among traders").
    (re.compile(rf"(?:\b{_IN_MY})?\bgmail\b(?:\s+(?:{_MAIL_WORDS})\b)?", re.I), "gmail", True),
    (
        re.compile(
            rf"{_NOT_AFTER_CHANGE}\b{_IN_MY}outlook\b(?:\s+(?:{_MAIL_WORDS})\b)?(?!\s+(?:for|on|of)\b)"
            rf"|\boutlook\s+(?:{_MAIL_WORDS})\b",
            re.I,
        ),
        "outlook",
        True,
    ),
    # "the email about X", "emails from Phillip", "did Harry email Suresh" name the source; "a phishing
    # email" is a topic, and so is "a suspicious phishing email to security" (a word between the
    # article and "email" makes it one). In "Phillip's email about" the name is no source word.
    (
        re.compile(
            r"\b(?:in|from|via|by|on)\s+(?:the\s+|an?\s+|my\s+|his\s+|her\s+|their\s+)?(?:e-?mails?|mails?|"
            r"inbox|mailbox)\b|(?:\b(?:the|an?|my|his|her|their|this|that|these|those)|(?<=\w['’]s))\s+e-?mails?\s+"
            r"(?:about|from|to|where|that|with|on|in)\b|(?:\be-?mails|^\s*e-?mail)\s+(?:about|from|to|where|that|with|on|in)\b|"
            r"\be-?mail(?:ed)?\s+(?:me|us|you|him|her|them)\b|\be-?mailed\b",
            re.I,
        ),
        "mail",
        True,
    ),
    # "did Harry email Suresh": the verb between two people names the source; it stays in the query
    # (a verb names nobody, and it marks the next word as a person).
    (re.compile(r"\b(?:did|does|will|would|should)\s+\w+\s+e-?mail\b", re.I), "mail", False),
    (re.compile(r"\b(?:sharepoint|onedrive)\b", re.I), "microsoft", True),
    (re.compile(r"\bgoogle\s+(?:drive|docs?|sheets?|slides)\b", re.I), "google", True),
    (
        re.compile(
            r"\b(?:the|a|this|that|google)\s+docs?\b|\b(?:in|on|from)\s+(?:the\s+|google\s+)?(?:drive|docs)\b"
            r"|\bdrive\s+(?:file|folder|doc)s?\b",
            re.I,
        ),
        "drive",
        True,
    ),
]
_NICKNAMES = {
    "bob": "robert",
    "rob": "robert",
    "bill": "william",
    "will": "william",
    "mike": "michael",
    "jim": "james",
    "jeff": "jeffrey",
    "tom": "thomas",
    "dave": "david",
    "steve": "steven",
    "chris": "christopher",
    "matt": "matthew",
    "greg": "gregory",
    "sue": "susan",
    "liz": "elizabeth",
}
_PERSON_CUES = re.compile(
    r"\b(?:did|does|has|had|ask(?:ed)?|tell|told|email(?:ed)?|wrote|say|said|think|thought|post(?:ed)?)\s+$",
    re.I,
)
# After "email" these are the mail's things, not someone mailed: "Phillip's email address".
_MAIL_THINGS = {
    *"address addresses list lists thread threads chain chains server servers account accounts".split(),
    *"alias aliases signature client system group inbox folder attachment attachments archive".split(),
}
# After these a lowercase word is a thing as often as a person ("with cash", "from south", "send
# cash"): it counts only as someone's whole handle ("to abilinski"), not as a surname (michelle.cash).
_THING_OR_PERSON = re.compile(r"\b(?:from|by|to|with|send|sent)\s+$", re.I)
# Capitalised anyway: a month or weekday is a person only where a person stands ("did May say").
_CALENDAR = {*_MONTHS, "may", *(d.lower() for d in calendar.day_name)}
# Lowercase, these are words before they are names: a modal, a month or weekday, a verb.
_ORDINARY = {
    *_CALENDAR,
    *"will would can could shall should might must".split(),
    *"sue bill mark grant pat rob drew chase".split(),
}
# "'s" after these is a contraction or a thing's: "what's", "May's numbers", "today's call".
_NOT_POSSESSIVE = {*_CALENDAR, "what", "that", "there", "here", "who", "where", "how", "let", "today", "everyone"}
_PERSON_AFTER = re.compile(
    r"^(?:['’]s|\s+(?:say|said|says|write|wrote|writes|post|posted|think|thought|send|sent|"
    r"ask|asked|want|wanted|decide|decided|mention|mentioned|propose|proposed))\b",
    re.I,
)
_NAME_TOKEN = re.compile(r"[a-z]{3,}")
# A public office before a name marks someone the question reads about, not a colleague: "what did
# Governor Davis say" is not Frank Davis. (Mr., Dr., President or Chairman stay names: a colleague
# may be one.)
_OFFICE = re.compile(
    r"\b(?:governor|gov\.|senator|sen\.|congressman|congresswoman|mayor|commissioner|minister)\s+$",
    re.I,
)


@dataclass
class Interpretation:
    after: datetime | None = None
    before: datetime | None = None
    source_types: tuple[str, ...] = ()
    people: tuple[str, ...] = ()  # every name of theirs the index holds: what the search prefers
    query: str = ""  # the query without the phrases that became filters
    # name -> the one name its person is reported by (`People.person`); a name not here is its own
    reported: Mapping[str, str] = field(default_factory=dict)
    newest: bool = False  # a recency word asked for the newest documents ("the latest", "most recent")
    topic: bool = True  # words beyond filters, people, recency and kinds of document are left to search for

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.after:
            out["after"] = iso_time(self.after)
        if self.before:
            out["before"] = iso_time(self.before)
        if self.source_types:
            out["source_types"] = list(self.source_types)
        if self.people:
            out["people"] = list(dict.fromkeys(self.reported.get(p, p) for p in self.people))
        if self.newest:
            out["sort"] = "newest"
        return out

    @property
    def filters(self) -> bool:
        return bool(self.after or self.before or self.source_types)


def _day(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def _month(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def time_window(query: str, now: datetime) -> tuple[datetime | None, datetime | None, list[tuple[int, int]]]:
    """The [after, before) window a time phrase of `query` names, relative to `now`, and its spans.
    The first phrase found counts; a phrase naming no real date ("February 30") names none, and a
    negated one ("but not last week", `negated`) none either (its span is returned with the
    window's: its words are no topic)."""
    now = now.astimezone(timezone.utc)
    skipped: list[tuple[int, int]] = []
    for pattern, window in _TIME_RULES:
        for match in pattern.finditer(query):
            found = window(match, now)
            if found is None:
                continue
            bound = _BOUND_BEFORE.search(query[: match.start()])
            start = bound.start() if bound is not None and found[0] is not None else match.start()
            if negated(query, start):
                skipped.append((start, match.end()))
                continue
            if bound is None or found[0] is None:
                return found[0], found[1], [*skipped, match.span()]
            after, before = _bound(bound[1], found[0], found[1] or now)  # "since yesterday": until now
            return after, before, [*skipped, (bound.start(), match.end())]
    return None, None, skipped


# Words that deny the place or time right after them: "not in Slack", "not the one in Slack", "the
# plan isn't in Drive", "never last week", "anything except the email", "outside Slack", "besides
# Slack", "other than last week". Elsewhere in the clause a "not" denies an act, not the place: "why
# was the contract not signed in June 2000", "what did outside counsel say in Slack". Not finding
# something somewhere denies the place wherever it is in the clause ("I couldn't find the plan in
# Slack"); another negated verb does not ("why couldn't Bob come in June 2000"). An apostrophe is
# typed either way ("isn't", "isn’t").
_NEGATION = re.compile(
    r"\b(?:not|never|except|excluding|besides|outside(?:\s+of)?|other\s+than|apart\s+from|instead\s+of"
    r"|rather\s+than|(?:is|was|are|were)n['’]?t)"
    r"(?:\s+(?:the\s+ones?|anything|anywhere|any|those|ones?))?"
    r"(?:\s+(?:in|from|on|at|during|via|within|inside|through|over))?(?:\s+(?:the|an?|my|our|this|that|those))?"
    r"\s*$",
    re.I,
)
_NOT_FOUND = re.compile(
    r"\b(?:(?:ca|could|did|do|does|wo|would)(?:n['’]?t|\s+not)\s+(?:\w+\s+)?(?:find|see|locate|spot)"
    r"|cannot\s+(?:find|see))\b",
    re.I,
)
_CLAUSE_END = re.compile(r"[,;:.!?()]|\b(?:but|and\s+then)\b", re.I)


def negated(query: str, start: int) -> bool:
    """Whether the phrase at `start` is denied: a negation right before it (`_NEGATION`), or not
    finding something (`_NOT_FOUND`) before it in its clause (after the last punctuation or "but",
    within `CUE_WINDOW` characters)."""
    clause = _before(query, start)
    ends = list(_CLAUSE_END.finditer(clause))
    clause = clause[ends[-1].end() :] if ends else clause
    return bool(_NEGATION.search(clause) or _NOT_FOUND.search(clause))


_Window = tuple[datetime | None, datetime | None]
_M = rf"({_MONTH_RE})\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
# "3", "two", "a couple of", "a few" (read as three)
_COUNT = rf"(\d{{1,3}}|(?:a\s+)?couple(?:\s+of)?|(?:a\s+)?few|{'|'.join(_COUNTS)})"
# A number before a unit or a counted noun is a quantity, not a year: "from 2000 contracts", "2000 MW".
_NOT_A_COUNT = (
    r"(?!\s+(?:mw|mwh|kw|kwh|gw|gwh|megawatts?|mmbtus?|dths?|mcf|bcf|bbls?|barrels?|tons?|contracts?|"
    r"dollars?|usd|cents?|shares?|lots?|units?|people|employees|customers|users|accounts?|deals?|trades?|"
    r"homes|miles?|pounds?|points?|bps|hours?|minutes?|times|records?|rows?|items?|pages?|copies)\b)"
)
_QUARTERS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": 4}


_Reading = Callable[[re.Match[str], datetime], _Window | None]  # (match, the question's time) -> window


def _rules(*pairs: tuple[str, _Reading]) -> list[tuple[re.Pattern[str], _Reading]]:
    return [(re.compile(pattern, re.I), reading) for pattern, reading in pairs]


def _count(word: str) -> int:
    """The number a `_COUNT` word says."""
    word = word.lower()
    if word.isdigit():
        return int(word)
    return 2 if "couple" in word else 3 if "few" in word else _COUNTS[word]


def _us_date(m: re.Match[str], now: datetime) -> _Window | None:
    """ "10/29/2001", "11/27/01": month first, as the mail writes it (a first number over 12 is the day)."""
    first, second, y = int(m[1]), int(m[2]), int(m[3])
    year = y if len(m[3]) == 4 else (2000 + y if y < 70 else 1900 + y)
    month, day = (second, first) if first > 12 else (first, second)
    return _date(year, month, day)


def _week_of(day: _Window | None) -> _Window | None:
    """ "the week of May 7": seven days from that day."""
    return None if day is None or day[0] is None else (day[0], day[0] + timedelta(days=7))


def _year(y: str) -> tuple[datetime, datetime]:
    return datetime(int(y), 1, 1, tzinfo=timezone.utc), datetime(int(y) + 1, 1, 1, tzinfo=timezone.utc)


def _named_month(now: datetime, name: str, y: str | None) -> tuple[datetime, datetime]:
    """The month `name` of year `y`, else the latest such month that has begun by `now`."""
    number = _month_no(name)
    return _month(int(y), number) if y else _month(*_latest(now, number))


def _between(m: re.Match[str], now: datetime) -> _Window:
    last = _named_month(now, m[3], m[4] or m[2])
    first = _named_month(now, m[1], m[2] or m[4])
    if first[0] > last[0]:  # "from November to February": the November before
        first = _month(last[0].year - 1, _month_no(m[1]))
    return first[0], last[1]


_BOUND_WORDS = ("since", "after", "before", "until", "till")
_BOUND_BEFORE = re.compile(rf"\b({'|'.join(_BOUND_WORDS)})\s+$", re.I)  # "since" + "yesterday"


def _between_days(m: re.Match[str], now: datetime) -> _Window | None:
    """ "between March 17 and March 31, 2016" (or "from March 17 to 31"): both days whole; without a
    year, the latest such span that has begun by `now`."""
    first_month, first_day, first_year, last_month, last_day, last_year = m.groups()
    year = last_year or first_year
    last = _date(int(year), _month_no(last_month or first_month), int(last_day)) if year else None
    if not year:
        last = _recent_date(now, _month_no(last_month or first_month), int(last_day))
    if last is None or last[0] is None:
        return None
    first = _date(int(first_year or last[0].year), _month_no(first_month), int(first_day))
    wraps = _month_no(first_month) > _month_no(last_month or first_month)
    if first is not None and first[0] is not None and not first_year and wraps and first[0] > last[0]:
        first = _date(last[0].year - 1, _month_no(first_month), int(first_day))  # "from December 20 to January 5"
    if first is None or first[0] is None or first[0] > last[0]:
        return None
    return first[0], last[1]


def _bound(word: str, start: datetime, end: datetime) -> _Window:
    word = word.lower()
    if word in ("since", "from"):
        return start, None
    if word == "after":
        return end, None
    return (None, start) if word == "before" else (None, end)  # until, till, through


def _bound_day(word: str, now: datetime, month: int, day: int, year: str | None) -> _Window | None:
    """A bound word in front of a day ("until June 30"): open-ended from or to that day."""
    found = _date(int(year), month, day) if year else _recent_date(now, month, day)
    if found is None or found[0] is None or found[1] is None:
        return None
    return _bound(word, found[0], found[1])


# (pattern, how its match reads as a window or None), most specific first; compiled once.
_TIME_RULES = _rules(
    (
        rf"\b(?:between|from)\s+{_M}(?:\s+{_YEAR})?\s+(?:and|to|until|till|through|-)\s+{_M},?(?:\s+{_YEAR})?\b",
        _between,
    ),
    (
        rf"\b(?:between|from)\s+{_M}\s+{_DAY}(?:,?\s+{_YEAR})?\s+(?:and|to|until|till|through|-)\s+"
        rf"(?:{_M}\s+)?{_DAY}(?:,?\s+{_YEAR})?\b",
        _between_days,
    ),
    (
        rf"\b(?:the\s+)?week\s+of\s+{_M}\s+{_DAY}(?:,?\s+{_YEAR})?\b",
        lambda m, now: _week_of(
            _date(int(m[3]), _month_no(m[1]), int(m[2])) if m[3] else _recent_date(now, _month_no(m[1]), int(m[2]))
        ),
    ),
    (
        rf"\b(?:the\s+)?week\s+of\s+(?:the\s+)?{_DAY}\s+(?:of\s+)?{_M}(?!\w)(?:,?\s+{_YEAR}\b)?",
        lambda m, now: _week_of(
            _date(int(m[3]), _month_no(m[2]), int(m[1])) if m[3] else _recent_date(now, _month_no(m[2]), int(m[1]))
        ),
    ),
    (r"\b(\d{4})-(\d{2})-(\d{2})\b", lambda m, now: _date(int(m[1]), int(m[2]), int(m[3]))),
    (r"(?<![\w/.-])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\w/])", _us_date),
    (rf"\b{_M}\s+{_DAY},?\s+{_YEAR}\b", lambda m, now: _date(int(m[3]), _month_no(m[1]), int(m[2]))),
    (rf"\b{_DAY}\s+(?:of\s+)?{_M},?\s+{_YEAR}\b", lambda m, now: _date(int(m[3]), _month_no(m[2]), int(m[1]))),
    (rf"\bon\s+{_M}\s+{_DAY}\b", lambda m, now: _recent_date(now, _month_no(m[1]), int(m[2]))),
    (
        rf"\bon\s+(?:the\s+)?{_DAY}\s+(?:of\s+)?{_M}(?!\w)",
        lambda m, now: _recent_date(now, _month_no(m[2]), int(m[1])),
    ),
    (  # "since March 30", "before the 15th of March 2001": from or to that day
        rf"\b(since|after|before|until|till|through)\s+{_M}\s+{_DAY}(?:,?\s+{_YEAR})?\b(?![/:.]\d)",
        lambda m, now: _bound_day(m[1], now, _month_no(m[2]), int(m[3]), m[4]),
    ),
    (
        rf"\b(since|after|before|until|till|through)\s+(?:the\s+)?{_DAY}\s+(?:of\s+)?{_M}(?!\w)(?:,?\s+{_YEAR}\b)?",
        lambda m, now: _bound_day(m[1], now, _month_no(m[3]), int(m[2]), m[4]),
    ),
    (
        rf"\b(since|after|before|until|till|through)\s+{_M},?\s+(?:of\s+)?{_YEAR}\b",  # "from March 2001": the month
        lambda m, now: _bound(m[1], *_named_month(now, m[2], m[3])),
    ),
    (
        rf"\b(since|after|before|until|till)\s+{_M}(?!\w)(?!\s*\d)",
        lambda m, now: _bound(m[1], *_named_month(now, m[2], None)),
    ),
    (rf"\b(since|after|before|until|till)\s+{_YEAR}\b{_NOT_A_COUNT}", lambda m, now: _bound(m[1], *_year(m[2]))),
    (
        rf"\b(?:between|from)\s+{_YEAR}\s+(?:and|to|until|till|through|-)\s+{_YEAR}\b",
        lambda m, now: (_year(m[1])[0], _year(m[2])[1]) if m[1] <= m[2] else None,  # else "from 2001" alone
    ),
    (  # two years compared ("revenue in 2000 vs 2001", "in 2001 and 2000"): both, and the years between
        rf"\b(?:in|during|for|from)\s+{_YEAR}\s+(?:vs\.?|versus|and|or|against|compared\s+(?:to|with))\s+"
        rf"(?:in\s+|from\s+)?{_YEAR}\b",
        lambda m, now: (_year(min(m[1], m[2]))[0], _year(max(m[1], m[2]))[1]),
    ),
    (
        rf"\b(?:in|during|from)\s+(?:the\s+)?q([1-4])\s+(?:of\s+)?{_YEAR}\b",
        lambda m, now: _quarter(int(m[2]), int(m[1])),
    ),
    (
        r"\b(?:in|during|from)\s+(?:the\s+)?q([1-4])\b(?!\s*(?:of\s+)?\d)",
        lambda m, now: _latest_quarter(now, int(m[1])),
    ),
    (
        rf"\b(?:in|during|from)\s+the\s+(first|second|third|fourth|last)\s+quarter\s+of\s+{_YEAR}\b",
        lambda m, now: _quarter(int(m[2]), _QUARTERS[m[1].lower()]),
    ),
    (
        r"\b(?:the\s+)?day\s+before\s+yesterday\b",
        lambda m, now: (_day(now) - timedelta(days=2), _day(now) - timedelta(days=1)),
    ),
    (r"\byesterday\b", lambda m, now: (_day(now) - timedelta(days=1), _day(now))),
    (r"\b(?:last|over\s+the|this\s+past)\s+weekend\b", lambda m, now: _weekend(_day(now))),
    (r"\btoday\b|\bthis morning\b", lambda m, now: None if _in_a_name(m) else (_day(now), None)),
    (
        rf"\b{_COUNT}\s+(day|week|month|year)s?\s+ago\b",
        lambda m, now: _ago(now, _count(m[1]), m[2]),
    ),
    (
        # "since Monday": the day, made open-ended by `_BOUND_BEFORE` like any other phrase
        rf"(?:\b(?:last|on|from)\s+|{'|'.join(f'(?<={w} )' for w in _BOUND_WORDS)})(?:last\s+)?"
        rf"({'|'.join(_WEEKDAYS)})(?:['’]s)?\b",
        lambda m, now: _weekday(_day(now), _WEEKDAYS.index(m[1].lower())),
    ),
    (
        rf"\b(?:in the\s+)?(?:last|past)\s+{_COUNT}\s+(day|week|month|year)s?\b",
        lambda m, now: (now - _span(_count(m[1]), m[2]), None),
    ),
    (  # "over the last month", "in the past year": the 30 (365) days before the question, not a calendar month
        r"\b(?:(?:in|over|during|within)\s+the\s+(?:last|past)|(?:the\s+)?past)\s+(day|month|year)\b",
        lambda m, now: (now - _span(1, m[1]), None),
    ),
    (r"\blast\s+week\b|\bpast\s+week\b", lambda m, now: (_day(now) - timedelta(days=7), None)),
    (r"\bthis\s+week\b", lambda m, now: (_day(now) - timedelta(days=_day(now).weekday()), None)),
    (r"\blast\s+month\b", lambda m, now: _month(*_previous_month(now))),
    (r"\blast\s+quarter\b", lambda m, now: _quarter(*_previous_quarter(now))),
    (r"\bthis\s+quarter\b", lambda m, now: (_quarter(now.year, (now.month - 1) // 3 + 1)[0], None)),
    (r"\bthis\s+month\b", lambda m, now: (_month(now.year, now.month)[0], None)),
    (r"\blast\s+year\b", lambda m, now: _year(str(now.year - 1))),
    (r"\bthis\s+year\b", lambda m, now: (datetime(now.year, 1, 1, tzinfo=timezone.utc), None)),
    (rf"\b(?:in|during|from|of)?\s*{_M},?\s+(?:of\s+)?{_YEAR}\b", lambda m, now: _named_month(now, m[1], m[2])),
    (rf"\blast\s+{_M}(?!\w)(?!\s*\d)", lambda m, now: _month(*_latest(now - timedelta(days=now.day), _month_no(m[1])))),
    (rf"\b(?:in|during|from)\s+{_M}(?!\w)(?!\s*\d)", lambda m, now: _named_month(now, m[1], None)),
    (rf"\b(?:in|during|from)\s+{_YEAR}\b{_NOT_A_COUNT}", lambda m, now: _year(m[1])),
)


def _in_a_name(m: re.Match[str]) -> bool:
    """A capitalised word inside the question is part of a name ("the Restructuring Today piece",
    "USA Today"), not a time."""
    return m.start() > 0 and m.string[m.start()].isupper()


def _date(y: int, month: int, day: int) -> _Window | None:
    try:
        start = datetime(y, month, day, tzinfo=timezone.utc)
    except ValueError:  # not a date: the phrase names no time
        return None
    return start, start + timedelta(days=1)


def _recent_date(now: datetime, month: int, day: int) -> _Window | None:
    """The latest `month` `day` that has begun by `now`."""
    found = _date(now.year, month, day)
    if found is not None and found[0] is not None and found[0] > now:
        found = _date(now.year - 1, month, day)
    return found


def _quarter(y: int, quarter: int) -> tuple[datetime, datetime]:
    start = _month(y, 3 * quarter - 2)[0]
    return start, _month(y, 3 * quarter)[1]


def _ago(now: datetime, n: int, unit: str) -> _Window:
    """A window of one unit either side of `n` units before `now` ("two weeks ago")."""
    return now - _span(n + 1, unit), (now - _span(n - 1, unit) if n > 1 else now)


def _weekday(today: datetime, weekday: int) -> tuple[datetime, datetime]:
    """The last such weekday before today ("last Friday", "on Monday", "from Tuesday's call")."""
    back = (today.weekday() - weekday) % 7 or 7
    day = today - timedelta(days=back)
    return day, day + timedelta(days=1)


def _weekend(today: datetime) -> _Window:
    """The last Saturday and Sunday that have begun ("last weekend", "over the weekend")."""
    saturday = _weekday(today + timedelta(days=1), 5)[0]  # today, if today is Saturday
    return saturday, saturday + timedelta(days=2)


def _latest_quarter(now: datetime, quarter: int) -> _Window:
    """Quarter `quarter` of this year if it has begun by `now`, else of last year ("in Q4")."""
    start, end = _quarter(now.year, quarter)
    return (start, end) if start <= now else _quarter(now.year - 1, quarter)


def _previous_quarter(now: datetime) -> tuple[int, int]:
    quarter = (now.month - 1) // 3 + 1
    return (now.year, quarter - 1) if quarter > 1 else (now.year - 1, 4)


def _span(n: int, unit: str) -> timedelta:
    return timedelta(days=n * {"day": 1, "week": 7, "month": 30, "year": 365}[unit.lower()])


def _month_no(name: str) -> int:
    return _MONTHS.get(name.lower().rstrip("."), 5)  # "may" is the only month missing from the table


def _previous_month(now: datetime) -> tuple[int, int]:
    return (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)


def _latest(now: datetime, month: int) -> tuple[int, int]:
    """The most recent `month` that has begun by `now`."""
    return (now.year, month) if month <= now.month else (now.year - 1, month)


# A general source word adds nothing to a service named with it: "the SharePoint doc" is SharePoint's.
_NAMED_ALONE = {"drive": {"google", "microsoft"}, "mail": {"outlook", "gmail"}}


# The words of a source phrase that name the source (its prepositions and a possessive name are cues
# for a person: "emails from jsmith", "Phillip's email about the rent roll").
_SOURCE_NOUN = re.compile(
    r"\b(?:slack|teams|ms|microsoft|outlook|gmail|sharepoint|onedrive|google|drive|docs?|sheets?|slides|"
    r"e-?mail(?:s|ed)?|mails?|inbox|mailbox|messages?|threads?|channels?|posts?|dms?|chats?|files?|folders?)\b",
    re.I,
)
# "latest", "newest", "most recent", "recent": a wish for the newest documents, no topic to search for.
_RECENCY = re.compile(r"\b(?:latest|newest|most\s+recent|recent)\b", re.I)
# Words that say what kind of thing is wanted, not what it is about: with only these (and filters,
# people and recency words) left, "the latest email from Phillip" asks for no topic.
_NO_TOPIC = frozenset(
    """message messages email emails mail mails post posts thread threads chat chats dm dms update updates news
    version versions one ones thing things stuff item items file files doc docs document documents activity reply
    replies wrote write writes written sent send sends posted shared share shares inbox inboxes mailbox
    mailboxes""".split()
)
# Before another word, a bare "recent" says which of a thing the topic is ("recent graduates", "the
# recent storms"): it stays in the query and asks for nothing new. Before a preposition, a source
# word or a word of `_NO_TOPIC` ("recent emails from Phillip", "anything recent on the cap"), or at
# the end, it asks for the newest documents.
_RECENT_THING = re.compile(
    r"\s+(?!(?:from|by|on|about|in|to|with|regarding|re|for|of|at|and|or|ms|microsoft|slack|teams|outlook|gmail|"
    rf"drive|sharepoint|onedrive|google|{'|'.join(sorted(_NO_TOPIC))})\b)[a-z]",
    re.I,
)


def _recency(query: str) -> list[tuple[int, int]]:
    """The spans of the recency words that ask for the newest documents: not inside a name ("the
    Latest News digest"), nor a bare "recent" that describes the topic (`_RECENT_THING`)."""
    return [
        m.span()
        for m in _RECENCY.finditer(query)
        if not _in_a_name(m) and not (m[0].lower() == "recent" and _RECENT_THING.match(query, m.end()))
    ]


def _topic_words(query: str) -> tuple[str, ...]:
    """The words of `query` (the question less its filter phrases and recency words) that may say
    what it asks about: its content words that are no request ("show me") and no kind of document
    or act of sending (`_NO_TOPIC`). Any of them that is no name of the people it names is a topic."""
    return tuple(t for t in content_terms(query) if t not in _ASKING and t not in _NO_TOPIC)


def _has_topic(words: Iterable[str], people: Iterable[str]) -> bool:
    """Whether any of `words` (`_topic_words`) is no name of the `people` the question names."""
    named = set().union(*map(name_words, people)) if people else set()
    return any(t not in named for t in words)


def source_types(query: str, known: Iterable[str]) -> tuple[tuple[str, ...], list[tuple[int, int]]]:
    """The source types the query's source words name, among `known`, and the words' spans (also
    of those negated: "not the one in Slack" names no filter)."""
    known = set(known)
    found: list[str] = []
    spans: list[tuple[int, int]] = []
    named: set[str] = set()
    for pattern, word, cut in _SOURCE_PATTERNS:
        said: list[tuple[int, int]] = []  # every phrase of the word not denied: "the email in my inbox"
        for candidate in _overlapping(pattern, query):
            if negated(query, candidate.start()):
                spans += [candidate.span()] if cut else []  # "not in Slack": no filter, and no topic either
            else:
                said.append(candidate.span())
        if said:
            if named & _NAMED_ALONE.get(word, set()):  # "the SharePoint doc", "Gmail emails": only the one named
                spans += said if cut else []
                continue
            types = [t for t in SOURCE_WORDS[word] if t in known]
            if types:
                named.add(word)
                found += [t for t in types if t not in found]
                spans += said if cut else []
    return tuple(found), spans


def _overlapping(pattern: re.Pattern[str], query: str) -> Iterable[re.Match[str]]:
    """The matches of `pattern` in `query`, each from where the one before began: two phrases that
    share a word are both found ("the email in" and "in my inbox" share the "in")."""
    start = 0
    while (match := pattern.search(query, start)) is not None:
        yield match
        start = match.start() + 1


CUE_WINDOW = 64  # characters around a word where the cues above are looked for (a query's cost stays linear)


def _before(query: str, start: int) -> str:
    """The `CUE_WINDOW` characters before `start`, from a word's beginning (a cue cut in two is no cue)."""
    if start <= CUE_WINDOW:
        return query[:start]
    window = query[start - CUE_WINDOW : start]
    return window[window.find(" ") + 1 :] if " " in window else ""


class People:
    """The index's vocabulary of people: name tokens (of personal addresses, handles and names) of
    everyone who wrote or took part in a served document (`Document.people`, which the catalog
    keeps in a table of its own; a source the configuration no longer names counts for nothing),
    with the names they stand for, which of those names are one person's (`Document.identities`,
    kept in the same table: a Slack member's handle, full name and address) and the kinds of
    source indexed; a question is read against the part of it its caller may see (`Sight`). Read
    by the first query, and again by the first query `REFRESH_S` or more after the last read
    (queries arriving meanwhile go on with the vocabulary they have), so a question is never
    answered with a vocabulary older than that. A read costs the people table's grouped count and
    its linked names, and the catalog's count of documents, not a read of documents: a
    million-chunk index is not re-read to learn one new author."""

    REFRESH_S = 60.0
    # Someone in at least one indexed document in this many is central to the index (a mailbox's
    # owner is in most of its mail): a name they share means them when they have twice the
    # documents of anyone else who has it. Ten mailboxes of the same size still qualify.
    OWNER_SHARE = 20
    TOTALS_KEPT = 1024  # callers whose number of visible documents is kept until the next read

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._building = False
        self.names: dict[str, set[str]] = {}
        self.documents: dict[str, int] = {}  # person -> documents they wrote or took part in
        self.linked: dict[str, str] = {}  # a name -> the one name its person is reported by (`person`)
        self.types: set[str] = set()
        self.total = 0  # served documents in the index
        self._totals: dict[tuple[str, ...], int] = {}  # principals -> served documents they may see

    def refresh(self, index: "Index") -> None:
        """Read the vocabulary on this thread when it is due and no other thread reads it already."""
        with self._lock:
            if self._building or (self._read_at is not None and time.monotonic() - self._read_at < self.REFRESH_S):
                return
            self._building = True
        self._build(index)

    def _build(self, index: "Index") -> None:
        names, documents, linked, types, total = self.names, self.documents, self.linked, self.types, self.total
        try:
            documents, kinds = index.people(), index.catalog.source_types()
            linked = _linked(index.identities())
            total = index.visible_documents(None)
            names = {}
            for person in documents:
                for token in _tokens(person):
                    names.setdefault(token, set()).add(person)
            types = set(kinds)
        except Exception as exc:  # the index closed or its database is away: keep what was read
            log.warning("could not read the index's people (%s); the last vocabulary stays", exc)
        finally:
            with self._lock:
                self._building = False
                self.names, self.documents, self.linked = names, documents, linked
                self.types, self.total = types, total
                self._totals = {}
                self._read_at = time.monotonic()

    def seen_total(self, index: "Index", principals: tuple[str, ...]) -> int:
        """How many served documents `principals` may see, read once per vocabulary read (a user's
        share of the index decides, as the index's total does for the operator, whether someone is
        central to what they see: `OWNER_SHARE`)."""
        with self._lock:
            known = self._totals.get(principals)
        if known is None:
            known = index.visible_documents(principals)
            with self._lock:
                if len(self._totals) >= self.TOTALS_KEPT:
                    self._totals = {}
                self._totals[principals] = known
        return known

    def person(self, name: str) -> str:
        """The one name `name`'s person is reported by: their address when the index knows one,
        else the handle a document links the name to, else `name` itself (also when two people
        share it: "john smith" of two workspaces stays "john smith")."""
        return self.linked.get(name, name)

    def find(self, query: str, sight: "Sight | None" = None) -> tuple[str, ...]:
        """The names (as `Document.people` gives them: addresses, handles, full names) of the
        people the query names, every one that has the word (`person` tells which are one
        person's): a known name token that is capitalised
        mid-sentence (unless it is a month's or a weekday's) or sits where a person does ("did X
        say", "X's"; before "said", "wants", ... only a capitalised word or a whole handle, so "you
        may want" names no May; after "from", "to" or "with" only a whole handle: "to abilinski").
        A name at most three people share means all of them; a name more share means the person
        most of its documents belong to: more than half of them or, for someone in at least one
        document in `OWNER_SHARE` of the index (a mailbox's owner), twice as many as anyone else
        who shares it; else nobody, unless the next word is a last name that narrows it ("John
        Arnold"); a first and last name nobody has names nobody, and neither does a name after a
        public office ("Governor Davis"). Only the people `sight` (default: the operator's, everyone)
        sees count, and their documents the caller sees: whether a word is a name, whom it
        means and whether the next word is its last name are decided as if no one else were in
        the index, so the answer is the same whoever else documents hidden from the caller name."""
        sight = sight or Sight(self)
        found: list[str] = []
        words = list(re.finditer(r"[A-Za-z][A-Za-z'.-]+", query))
        surnames: set[int] = set()  # words read as the last name of the word before
        for i, match in enumerate(words):
            if i in surnames:
                continue
            word = match[0].split("'")[0].lower()
            before, after = _before(query, match.start()), query[match.end() : match.end() + CUE_WINDOW]
            if _OFFICE.search(before):  # "Governor Gray Davis": none of its capitalised words is a colleague
                surnames.update(j for j in range(i + 1, min(i + 3, len(words))) if words[j][0][0].isupper())
                continue
            following = words[i + 1] if i + 1 < len(words) and "'" not in match[0] else None  # "Carla's D.C."
            adjacent = following is not None and not query[match.end() : following.start()].strip()
            # capitalised mid-sentence, or first before a capitalised possessive: "Larry May's email"
            leads = adjacent and following is not None and following[0][0].isupper() and following[0].endswith("'s")
            capitalised = match[0][0].isupper() and word not in _CALENDAR and (match.start() > 0 or leads)
            possessive = match[0].lower().endswith("'s") and word not in _NOT_POSSESSIVE  # "Bob's memo", not "May's"
            cued = (
                capitalised
                or possessive
                or bool(_PERSON_CUES.search(before) and word not in _MAIL_THINGS)
                or bool(_PERSON_AFTER.match(after) and (match[0][0].isupper() or self._handle(word, sight)))
                or bool(_THING_OR_PERSON.search(before) and self._handle(word, sight))
            )
            if not cued:
                continue
            candidates = self._named(word, sight)
            if candidates and following is not None and adjacent:
                second = following[0].split("'")[0].lower()
                both = candidates & self._named(second, sight)
                if both or (following[0][0].isupper() and second not in _CALENDAR):
                    surnames.add(i + 1)  # read with this word: "John Arnold" is not Matthew Arnold
                if not both and i + 1 in surnames:
                    continue  # a full name the index does not know: not another Susan ("Susan Scott")
                if both:  # who has both names, and their plain handles ("hamza" for "Hamza Faran")
                    alone = {p for p in self._meant(candidates, sight) if _tokens(p) <= {word, second}}
                    candidates = both | alone
            found += [p for p in self._meant(candidates, sight) if p not in found]
        return tuple(found)

    def _handle(self, word: str, sight: "Sight") -> bool:
        """Whether `word` is the whole name of someone `sight` sees and not also a word written in
        lowercase ("may", "will", "march", "bill"): the handle "mark" is no one in "mark said"."""
        if word in _ORDINARY:
            return False
        return bool(sight.seen({p for p in self.names.get(word, ()) if p.split("@", 1)[0].lower() == word}))

    def _named(self, word: str, sight: "Sight") -> set[str]:
        """Who of those `sight` sees `word` may name: the people with that name token or the full
        name it is short for ("Bob": Bob Crane and the Roberts)."""
        return sight.seen(self.names.get(word, set()) | self.names.get(_NICKNAMES.get(word, ""), set()))

    def _meant(self, candidates: set[str], sight: "Sight") -> list[str]:
        """Who a name shared by `candidates` means (see `find`), by the documents of theirs `sight`
        sees; none when it stays ambiguous."""
        if len(candidates) <= 3:
            return sorted(candidates)
        documents = sight.documents(candidates)
        counts = sorted(((documents.get(p, 0), p) for p in candidates), reverse=True)
        total = sum(n for n, _ in counts)
        most, runner_up = counts[0][0], counts[1][0]
        if most * 2 > total:
            return [counts[0][1]]
        if most >= 2 * runner_up:  # and central to what the caller sees: a mailbox's owner, say
            everything = sight.total()
            if everything and most * self.OWNER_SHARE >= everything:
                return [counts[0][1]]
        return []


class Sight:
    """The vocabulary's people as one caller sees them (`People.find` decides only by these): for
    the operator (no principals) everyone in it, by their document counts, which are read from
    served documents only; for a user, those named by a served document they may see, counted by
    such documents. A user's counts are read from the index for the candidates of the words read as
    names, once per question (a few small reads of the people table's key, against the ACL's), and
    their number of visible documents once per vocabulary read (`People.seen_total`)."""

    def __init__(self, people: People, index: "Index | None" = None, principals: tuple[str, ...] | None = None) -> None:
        self._people, self._index = people, index
        self._principals = principals if index is not None else None
        self._counts: dict[str, int] = {}  # person -> documents of theirs the caller sees (0: none)

    def seen(self, persons: Iterable[str]) -> set[str]:
        """Those of `persons` the caller may see a served document of."""
        return set(persons) if self._principals is None else set(self.documents(persons))

    def documents(self, persons: Iterable[str]) -> dict[str, int]:
        """person -> the served documents of theirs the caller may see, for those of `persons`
        named by any (the operator: every one of `persons`, by the vocabulary's counts)."""
        if self._index is None or self._principals is None:
            return {p: self._people.documents.get(p, 0) for p in persons}
        wanted = set(persons)
        missing = sorted(wanted - self._counts.keys())
        if missing:
            got = self._index.people(missing, self._principals)
            self._counts.update({p: got.get(p, 0) for p in missing})
        return {p: self._counts[p] for p in wanted if self._counts[p]}

    def total(self) -> int:
        """The served documents the caller may see."""
        if self._index is None or self._principals is None:
            return self._people.total
        return self._people.seen_total(self._index, self._principals)


def _linked(identities: Mapping[str, set[str]]) -> dict[str, str]:
    """name -> the one name its person is reported by, from the names documents link (the people
    table's identities: name -> the identifiers it stands for): the one address among them or
    theirs ("hamza" of an export that has no emails, and of the API that has hamza@example.com,
    is hamza@example.com), else the one identifier. A name standing for two addresses, or two
    names without one, is nobody's in particular and is not linked."""
    linked: dict[str, str] = {}
    for name, ids in identities.items():
        reach = ids | {far for i in ids for far in identities.get(i, ())}
        addresses = {i for i in reach if "@" in i}
        one = addresses if addresses else ids
        if len(one) == 1 and (only := next(iter(one))) != name:
            linked[name] = only
    return linked


def name_words(person: str) -> set[str]:
    """The words a question may name `person` by: their name tokens (`_tokens`) and the nicknames
    of those ("bob" for robert.badeer@enron.com)."""
    tokens = _tokens(person)
    return tokens | {nickname for nickname, name in _NICKNAMES.items() if name in tokens}


def _tokens(person: str) -> set[str]:
    """The name tokens of a personal address or name: a handle ("hamza"), first and last
    ("phillip.allen", "mark_a_thompson", "bill_williams_iii": initials and a III aside) or a display
    name of up to three words ("hamza faran"). Any other address is a list, desk or service and has
    none: more words than a name has ("enron.houston.ias", "western.price.survey.contacts") or a
    word of lists and services ("all.houston", "portland.desk", "outlook.team"); its other words are
    places and topics, not names."""
    local = person.split("@", 1)[0].lower()
    words = [w for w in _NAME_TOKEN.findall(local) if w not in _SUFFIXES]
    most = 3 if "@" not in person and " " in local.strip() else 2  # a display name may have a middle name
    if len(words) > most or set(words) & _NOT_A_PERSON:
        return set()
    return set(words) - _NOT_NAMES


_SUFFIXES = {"iii"}  # shorter suffixes (Jr, II, IV) are no name token anyway
_NOT_A_PERSON = {
    "address",  # no.address@: a placeholder for mail without an address
    "admin",
    "alert",
    "alerts",
    "all",
    "announce",
    "bounce",
    "contacts",
    "daily",
    "desk",
    "digest",
    "everyone",
    "group",
    "info",
    "list",
    "lists",
    "mailer",
    "messenger",
    "news",
    "newsletter",
    "noreply",
    "notice",
    "office",
    "recipients",  # undisclosed-recipients@
    "reply",
    "sales",
    "service",
    "subscriptions",
    "support",
    "system",
    "team",
    "undisclosed",
    "unsubscribe",
    "update",
    "updates",
    "webmaster",
    "weekly",
}
_NOT_NAMES = {  # words of personal addresses that are not names
    "and",
    "bot",
    "chairman",
    "com",
    "communications",
    "critical",
    "editor",
    "enron",
    "exclusive",
    "mail",
    "management",
    "offers",
    "owner",
    "public",
    "relations",
    "software",
    "the",
}


def _disjoint(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans, sorted, with overlapping or repeated ones merged ("Google Docs" is named by two
    source words): each part of the query is cut once."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _blanked(text: str, spans: Iterable[tuple[int, int]]) -> str:
    for start, end in spans:
        text = text[:start] + " " * (end - start) + text[end:]
    return text


# Words that ask for something without saying what: "show the newest Slack message"
_ASKING = frozenset("show find give list open fetch search look see me us".split())


def _says_something(query: str) -> bool:
    """Whether `query` holds a word that is no stop word nor a request ("the", "any", "show the":
    nothing to search for)."""
    return any(term not in _ASKING for term in content_terms(query))


def _cut(query: str, spans: list[tuple[int, int]]) -> str:
    for start, end in sorted(_disjoint(spans), reverse=True):
        query = query[:start] + " " + query[end:]
    return " ".join(query.split())


def interpret(
    query: str, now: datetime | None, people: People, types_known: Iterable[str], sight: Sight | None = None
) -> Interpretation:
    """Time window, source types and people of `query` (of those `sight` sees: default, everyone),
    and the query without the filter phrases and recency words. Given the question's time (`now`),
    a window without an end ends there."""
    moment = now or datetime.now(timezone.utc)
    after, before, time_spans = time_window(query, moment)
    if now is not None and after is not None and before is None:
        before = moment  # "last week", "since March": nothing after the question answers it
    recency = _recency(query)
    # Source words are read as if the recency words were not there: "latest email from Phillip" is
    # "email from Phillip", a mail's.
    types, source_spans = source_types(_blanked(query, recency), types_known)
    # "since May" names a month, not Tom May; "in Outlook" a source, not its team. Only a source's
    # own words are blanked: "emails from jsmith" and "Phillip's email about" keep their cue.
    unnamed = _blanked(query, time_spans)
    unnamed = _blanked(unnamed, [m.span() for s, e in source_spans for m in _SOURCE_NOUN.finditer(query, s, e)])
    found = people.find(unnamed, sight)
    stripped = _cut(query, time_spans + source_spans + recency)
    left = _topic_words(stripped)
    if not _says_something(stripped):  # all of it was filters ("the latest Teams message"): less its recency words
        stripped = _cut(query, recency)
    return Interpretation(
        after=after,
        before=before,
        source_types=types,
        people=found,
        query=stripped if _says_something(stripped) else query,
        reported={name: people.person(name) for name in found},
        newest=bool(recency),
        topic=_has_topic(left, found),
    )
