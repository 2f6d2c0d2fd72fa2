"""Mail parts that are not text but hold text a reader sees: calendar invitations and S/MIME bodies.

An invitation (a `text/calendar` part, an `.ics` attachment) is its events as the lines a mail
client shows: what, when, how it repeats (`recurrence`: "every week on Tuesday, 10 times"), where,
who (in an answer, who accepted or declined), comments and the description (`calendar_text`),
never the raw iCalendar. An opaque-signed S/MIME body (`application/pkcs7-mime; smime-type=signed-data`) is
plain MIME inside a PKCS#7 wrapper that needs no key: `signed_content` unwraps it (DER or BER);
an encrypted one (`enveloped-data`) cannot be read without the recipient's key (`smime_type`
tells them apart). Both read only what they are given, never raise on junk: None or "" instead.
"""

from __future__ import annotations

import re

from email.message import EmailMessage

from .mail_text import first_named

CALENDAR_TYPES = {"text/calendar", "application/ics", "text/x-vcalendar"}
SMIME_TYPES = {"application/pkcs7-mime", "application/x-pkcs7-mime"}
SHOWN_ATTENDEES = 8  # past this, an event's attendees line names the first ones and counts the rest
MAX_EVENT_CHARS = 20_000  # of an event's description


def is_calendar(content_type: str, name: str = "") -> bool:
    """Whether a part or an attachment is an invitation: its type or an `.ics` / `.vcs` name."""
    return content_type.lower() in CALENDAR_TYPES or name.lower().endswith((".ics", ".vcs"))


_FOLD = re.compile(r"\r?\n[ \t]")
_ESCAPE = re.compile(r"\\([\\;,nN])")


def calendar_text(ics: str) -> str:
    """The events of an iCalendar text, each as `## Event: SUMMARY` and its When, Where, Organizer
    and Attendees lines, then its description; "" when it holds none (lines unfolded, escapes read)."""
    events: list[str] = []
    props: list[tuple[str, dict[str, str], str]] | None = None
    method, inner = "", 0  # inner: depth in a component of the event (an alarm's DESCRIPTION is not its)
    for line in _FOLD.sub("", ics).splitlines():
        name, params, value = _property(line)
        if name == "METHOD":
            method = value.upper()
        elif name == "BEGIN" and value.upper() == "VEVENT":
            props, inner = [], 0
        elif name == "END" and value.upper() == "VEVENT" and props is not None:
            events.append(_event(props, method))
            props = None
        elif props is not None and name in ("BEGIN", "END"):
            inner += 1 if name == "BEGIN" else -1
        elif props is not None and name and not inner:
            props.append((name, params, value))
    return "\n\n".join(e for e in events if e)


def _property(line: str) -> tuple[str, dict[str, str], str]:
    """(NAME, {PARAM: value}, value) of a content line; ("", {}, "") when it is none."""
    head, sep, value = line.partition(":")
    while head.count('"') % 2 and sep:  # a quoted parameter value holding ":" (a mailto)
        more, sep, value = value.partition(":")
        head += ":" + more
    if not sep:
        return "", {}, ""
    name, *pairs = head.split(";")
    params = {}
    for pair in pairs:
        key, _, val = pair.partition("=")
        params[key.strip().upper()] = val.strip().strip('"')
    return name.strip().upper(), params, value


def _unescaped(value: str) -> str:
    return _ESCAPE.sub(lambda m: "\n" if m[1] in "nN" else m[1], value).strip()


def _event(props: list[tuple[str, dict[str, str], str]], method: str) -> str:
    first = {name: (params, value) for name, params, value in reversed(props)}
    summary = _unescaped(first.get("SUMMARY", ({}, ""))[1]) or "(no title)"
    lines = [f"## Event: {summary}" + (" (cancelled)" if method == "CANCEL" else "")]
    if "DTSTART" in first:
        when = _when(*first["DTSTART"])
        if "DTEND" in first:
            when += f" to {_when(*first['DTEND'])}"
        lines.append(f"When: {when}")
    if "RRULE" in first:
        lines.append(f"Repeats: {recurrence(first['RRULE'][1])}")
    if where := _unescaped(first.get("LOCATION", ({}, ""))[1]):
        lines.append(f"Where: {where}")
    if "ORGANIZER" in first:
        lines.append(f"Organizer: {_person(*first['ORGANIZER'])}")
    attendees = [(params, value) for name, params, value in props if name == "ATTENDEE"]
    people = [_person(params, value) for params, value in attendees]
    if method == "REPLY":  # an answer: who answered what, as a mail client shows it ("Bob declined")
        lines += [
            f"Reply: {_person(params, value)} {_ANSWERS[params.get('PARTSTAT', '').upper()]}"
            for params, value in attendees
            if params.get("PARTSTAT", "").upper() in _ANSWERS
        ]
    elif people:
        lines.append(f"Attendees: {first_named(people, SHOWN_ATTENDEES)}")
    lines += [f"Comment: {text}" for name, _, value in props if name == "COMMENT" and (text := _unescaped(value))]
    description = _unescaped(first.get("DESCRIPTION", ({}, ""))[1])[:MAX_EVENT_CHARS]
    return "\n".join(lines) + (f"\n\n{description}" if description else "")


_ANSWERS = {"ACCEPTED": "accepted", "DECLINED": "declined", "TENTATIVE": "tentatively accepted"}
_ANSWERS |= {"DELEGATED": "delegated"}
_DAYS = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday"}
_DAYS |= {"SA": "Saturday", "SU": "Sunday"}
_UNITS = {"SECONDLY": "second", "MINUTELY": "minute", "HOURLY": "hour", "DAILY": "day", "WEEKLY": "week"}
_UNITS |= {"MONTHLY": "month", "YEARLY": "year"}
_ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last", -2: "second to last"}
_BYDAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")


def recurrence(rule: str) -> str:
    """An RRULE as a reader says it: `FREQ=WEEKLY;BYDAY=TU;COUNT=10` is "every week on Tuesday,
    10 times"; `FREQ=MONTHLY;BYDAY=1MO;UNTIL=20270301` "every month on the first Monday, until
    2027-03-01". A rule it cannot read is given as it is."""
    parts = dict(part.partition("=")[::2] for part in rule.strip().upper().split(";") if "=" in part)
    unit = _UNITS.get(parts.get("FREQ", ""))
    if unit is None:
        return rule.strip()
    interval = parts.get("INTERVAL", "1")
    said = f"every {unit}" if interval in ("", "1") else f"every {interval} {unit}s"
    days = [_day(d) for d in parts.get("BYDAY", "").split(",") if d]
    if days and all(days):
        said += " on " + _listed([d for d in days if d])
    if parts.get("BYMONTHDAY"):
        said += " on day " + _listed(parts["BYMONTHDAY"].split(","))
    if parts.get("COUNT", "").isdigit():
        said += f", {parts['COUNT']} times"
    if parts.get("UNTIL"):
        said += f", until {_when({}, parts['UNTIL'])}"
    return said


def _day(code: str) -> str | None:
    found = _BYDAY.match(code.strip())
    if not found:
        return None
    nth = int(found[1]) if found[1] else 0
    if nth and nth not in _ORDINALS:
        return None
    return (f"the {_ORDINALS[nth]} " if nth else "") + _DAYS[found[2]]


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_STAMP = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})\d{0,2}(Z?))?$")


def _when(params: dict[str, str], value: str) -> str:
    """An iCalendar date or date-time as read: "2026-12-10 14:00 UTC", "2026-12-10 14:00 (Europe/Zurich)"."""
    found = _STAMP.match(value.strip())
    if not found:
        return value.strip()
    year, month, day, hour, minute, utc = found.groups()
    text = f"{year}-{month}-{day}"
    if hour is not None:
        text += f" {hour}:{minute}" + (" UTC" if utc else f" ({params['TZID']})" if params.get("TZID") else "")
    return text


def _person(params: dict[str, str], value: str) -> str:
    address = re.sub(r"^mailto:", "", value.strip(), flags=re.I)
    name = params.get("CN", "")
    return f"{name} <{address}>" if name and name != address else address


def smime_type(part: EmailMessage) -> str:
    """A `pkcs7-mime` part's kind: "signed-data", "enveloped-data" (encrypted), ... ("" when unsaid)."""
    return str(part.get_param("smime-type", "") or "").lower()


def signed_content(der: bytes) -> bytes | None:
    """The content a PKCS#7 / CMS SignedData wraps (ContentInfo > SignedData > encapContentInfo >
    eContent), in DER or BER (indefinite lengths, an OCTET STRING in pieces); None when these bytes
    are not one or it holds no content (a detached signature)."""
    try:
        info = _children(der, 0, len(der))  # ContentInfo: the SEQUENCE's parts
        info = _children(der, *_inside(der, info[0]))
        signed = _children(der, *_inside(der, info[1]))  # [0] EXPLICIT
        signed = _children(der, *_inside(der, signed[0]))  # SignedData's parts
        encap = _children(der, *_inside(der, signed[2]))  # version, digest algorithms, encapContentInfo
        if len(encap) < 2:
            return None
        content = _children(der, *_inside(der, encap[1]))[0]  # [0] EXPLICIT eContent
        return _octets(der, content)
    except (IndexError, ValueError):
        return None


def _header(data: bytes, at: int) -> tuple[int, int, int | None]:
    """(tag, where its content starts, its length: None when indefinite) of the element at `at`."""
    tag, first = data[at], data[at + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte tags are not used here")
    if first < 0x80:
        return tag, at + 2, first
    if first == 0x80:
        return tag, at + 2, None
    count = first & 0x7F
    if count > 4 or at + 2 + count > len(data):
        raise ValueError("bad length")
    return tag, at + 2 + count, int.from_bytes(data[at + 2 : at + 2 + count], "big")


def _end(data: bytes, at: int) -> int:
    """Where the element at `at` ends (after its end-of-contents octets when its length is indefinite)."""
    _, start, length = _header(data, at)
    if length is not None:
        if start + length > len(data):
            raise ValueError("truncated")
        return start + length
    while data[start : start + 2] != b"\0\0":
        start = _end(data, start)
    return start + 2


def _inside(data: bytes, at: int) -> tuple[int, int]:
    """(start, end) of the content of the element at `at` (its end-of-contents octets left out)."""
    _, start, length = _header(data, at)
    end = _end(data, at)
    return start, end if length is not None else end - 2


def _children(data: bytes, start: int, end: int) -> list[int]:
    """Where each element between `start` and `end` begins."""
    found = []
    while start < end:
        found.append(start)
        start = _end(data, start)
    return found


def _octets(data: bytes, at: int) -> bytes:
    """An OCTET STRING's bytes, pieced together when it is constructed (BER)."""
    tag = data[at]
    start, end = _inside(data, at)
    if tag == 0x04:
        return data[start:end]
    if tag == 0x24:
        return b"".join(_octets(data, child) for child in _children(data, start, end))
    raise ValueError("not an OCTET STRING")
