"""The labels Word's automatic numbering shows before paragraphs ("1.", "a)", "7.3", a bullet).

A numbered list, a numbered heading or a contract's clause holds no number in its text: Word
computes it from `numbering.xml` (ECMA-376 §17.9) as it lays the document out, and a reader sees
it as part of the paragraph ("Step 3", "see 7.3"). `Numbering` computes the same labels in
document order, a paragraph at a time: the paragraph's own `w:numPr`, else its style's (through
`w:basedOn`); the level's counter in its abstract definition (lists sharing one count on together,
as in Word), restarted where a list instance overrides the start, deeper levels restarted when a
level above counts on; the level's `w:lvlText` with each `%N` in level N's format. Bullets read as
"-". What Word computes beyond this (legal numbering across styles, `w:lvlRestart`, a paragraph
numbered by a level's `w:pStyle` alone) is read as the plain rule gives it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from docx.opc.constants import RELATIONSHIP_TYPE as RT

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_VAL = f"{_W}val"
_LEVEL_TEXT = re.compile(r"%([1-9])")
_ROMAN = [(1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"), (50, "l"), (40, "xl")]
_ROMAN += [(10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")]


@dataclass
class _Level:
    start: int = 1
    format: str = "decimal"
    text: str = ""


@dataclass
class _Instance:
    abstract: str
    starts: dict[int, int] = field(default_factory=dict)  # level -> the start it restarts at (startOverride)
    levels: dict[int, _Level] = field(default_factory=dict)  # levels the instance redefines
    started: bool = False


class Numbering:
    """The labels of one document's numbered paragraphs, computed in the order they are asked for."""

    def __init__(self, document: Any) -> None:
        self._abstracts: dict[str, dict[int, _Level]] = {}
        self._instances: dict[str, _Instance] = {}
        self._counters: dict[str, dict[int, int]] = {}  # abstract -> level -> its current count
        self._styles = {s.get(f"{_W}styleId"): s for s in document.styles.element.iterfind(f"{_W}style")}
        self._of_style: dict[str | None, tuple[str, int] | None] = {}
        try:
            numbering = document.part.part_related_by(RT.NUMBERING).element
        except KeyError:  # a document without numbering
            return
        for abstract in numbering.iterfind(f"{_W}abstractNum"):
            self._abstracts[abstract.get(f"{_W}abstractNumId")] = {
                _int(lvl.get(f"{_W}ilvl"), 0): _level(lvl) for lvl in abstract.iterfind(f"{_W}lvl")
            }
        for num in numbering.iterfind(f"{_W}num"):
            ref = num.find(f"{_W}abstractNumId")
            if ref is None:
                continue
            instance = _Instance(abstract=ref.get(_VAL, ""))
            for override in num.iterfind(f"{_W}lvlOverride"):
                level = _int(override.get(f"{_W}ilvl"), 0)
                start = override.find(f"{_W}startOverride")
                if start is not None:
                    instance.starts[level] = _int(start.get(_VAL), 1)
                redefined = override.find(f"{_W}lvl")
                if redefined is not None:
                    instance.levels[level] = _level(redefined)
            self._instances[num.get(f"{_W}numId")] = instance

    def label(self, paragraph: Any) -> str:
        """The label Word shows before `paragraph` (a `w:p`), "" when it is not numbered; counts it."""
        found = self._numbering_of(paragraph)
        if found is None:
            return ""
        num_id, level = found
        instance = self._instances.get(num_id)
        if instance is None or instance.abstract not in self._abstracts:
            return ""
        levels = {**self._abstracts[instance.abstract], **instance.levels}
        if level not in levels:
            return ""
        counters = self._counters.setdefault(instance.abstract, {})
        if not instance.started:  # a list instance that restarts its levels does so where it begins
            instance.started = True
            for restarted, start in instance.starts.items():
                counters[restarted] = start - 1
        counters[level] = counters.get(level, levels[level].start - 1) + 1
        for deeper in [n for n in counters if n > level]:
            del counters[deeper]
        this = levels[level]
        if this.format == "bullet":
            return "-"
        if this.format == "none":
            return this.text if "%" not in this.text else ""

        def number(found: re.Match[str]) -> str:
            n = int(found[1]) - 1
            lvl = levels.get(n, _Level())
            return _formatted(counters.get(n, lvl.start), lvl.format)

        return _LEVEL_TEXT.sub(number, this.text).strip()

    def _numbering_of(self, paragraph: Any) -> tuple[str, int] | None:
        """(numId, level) of a paragraph: its own `w:numPr`, else its style's; None when unnumbered."""
        num_pr = paragraph.find(f"{_W}pPr/{_W}numPr")
        level = None
        if num_pr is not None:
            level = _child_value(num_pr, "ilvl")
            num_id = _child_value(num_pr, "numId")
            if num_id is not None:
                return None if num_id == "0" else (num_id, _int(level, 0))
        style = paragraph.find(f"{_W}pPr/{_W}pStyle")
        style_id = style.get(_VAL) if style is not None else None
        if style_id not in self._of_style:
            self._of_style[style_id] = self._style_numbering(style_id, set())
        found = self._of_style[style_id]
        if found is None:
            return None
        return found[0], _int(level, found[1])

    def _style_numbering(self, style_id: str | None, seen: set[str]) -> tuple[str, int] | None:
        if style_id is None or style_id in seen:
            return None
        seen.add(style_id)
        style = self._styles.get(style_id)
        if style is None:
            return None
        num_pr = style.find(f"{_W}pPr/{_W}numPr")
        if num_pr is not None and (num_id := _child_value(num_pr, "numId")) is not None:
            return None if num_id == "0" else (num_id, _int(_child_value(num_pr, "ilvl"), 0))
        based = style.find(f"{_W}basedOn")
        return self._style_numbering(based.get(_VAL) if based is not None else None, seen)


def _level(lvl: Any) -> _Level:
    start, fmt, text = (_child_value(lvl, tag) for tag in ("start", "numFmt", "lvlText"))
    return _Level(start=_int(start, 1), format=fmt or "decimal", text=text if text is not None else "")


def _child_value(element: Any, tag: str) -> str | None:
    child = element.find(f"{_W}{tag}")
    return None if child is None else child.get(_VAL)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _formatted(n: int, fmt: str) -> str:
    """A counter in a `w:numFmt`: decimal (and its unknown kin), zero-padded, letters, roman numerals."""
    if fmt in ("lowerLetter", "upperLetter") and n > 0:
        letter = chr(ord("a") + (n - 1) % 26) * ((n - 1) // 26 + 1)  # Word: a..z, aa..zz, ...
        return letter.upper() if fmt == "upperLetter" else letter
    if fmt in ("lowerRoman", "upperRoman") and 0 < n < 4000:
        roman = ""
        for value, digits in _ROMAN:
            while n >= value:
                roman, n = roman + digits, n - value
        return roman.upper() if fmt == "upperRoman" else roman
    if fmt == "decimalZero":
        return f"{n:02d}"
    return str(n)
