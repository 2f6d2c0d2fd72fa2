"""Splitting documents into passages the model can embed whole.

Invariant: no chunk holds more than `max_tokens` tokens (the sum of its pieces' counts by the
caller's `count`, the overlap it repeats included), whatever the text; and no chunk is a lead
alone (a heading, a header block: `_lead`) or ends with one, while text follows it (a header
block longer than the budget aside).

Chunks follow the text's own structure: a heading starts a new chunk, paragraphs (or, in a chat
thread, messages) are packed whole while they fit the token budget, and only a block that is too
long by itself is split by sentences (`. ! ?` before a capital; Chinese and Japanese `。！？；`,
which no space follows), then by words, and a piece with no space in it (a line of Chinese, a hex
dump, a `data:` URI) by characters: each piece is counted, and cut again while it is over the
budget. Pieces keep what joined them in the text (nothing between two Chinese sentences). A lead
is followed in its chunk by the start of what it introduces, the next piece cut at a word to fit
(`_Packer`), or moves to the next chunk when less than a quarter of the budget is left after it.
Consecutive chunks share `overlap` tokens of context so an answer that straddles a boundary is
still found. Tokens are counted COUNT_SLICE texts at a time, so a `count` that raises (a stop)
ends the chunking of one huge text between two slices.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TokenCounter = Callable[[Sequence[str]], list[int]]
COUNT_SLICE = 2048  # texts counted per call: the unit of work a stop may end chunking between

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
# Where a sentence ends: `. ! ?`, whitespace, then a capital, a digit or an opening quote or
# bracket; or a CJK full stop, exclamation or question mark or semicolon (and the closing quote or
# bracket after it), whether or not a space follows.
_SENTENCE = re.compile(
    r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])"
    "|(?<=[\u3002\uff61\uff01\uff1f\uff1b])(?![\u300d\u300f\u201d\u2019\uff09\u3015\u3011])\\s*(?=\\S)"
    "|(?<=[\u3002\uff61\uff01\uff1f\uff1b][\u300d\u300f\u201d\u2019\uff09\u3015\u3011])\\s*(?=\\S)"
)


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str


def approx_tokens(texts: Sequence[str]) -> list[int]:
    """A tokenizer-free estimate (about 1.3 word pieces per word), for tests and tools."""
    return [int(len(t.split()) * 1.3) + 1 for t in texts]


PARAGRAPH, LINE, SPACE = "\n\n", "\n", " "  # what joins a piece to the one before it


def split_blocks(text: str) -> list[str]:
    """Paragraphs (blank-line separated); a paragraph of several message lines stays one block
    unless it is long, in which case each line (a chat message, a list item) becomes a block."""
    return [block for block, _sep in _blocks(text)]


def _blocks(text: str) -> list[tuple[str, str]]:
    """`split_blocks` with, for each block, the separator that preceded it in the text: a line of a
    split paragraph is rejoined with one newline, not two (hard-wrapped mail, chat threads)."""
    blocks: list[tuple[str, str]] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        para = para.strip("\n")
        if not para.strip():
            continue
        lines = para.split("\n")
        if len(lines) > 1 and (len(para) > 600 or any(_HEADING.match(line) for line in lines)):
            kept = [line for line in lines if line.strip()]
            blocks.extend((line, PARAGRAPH if i == 0 else LINE) for i, line in enumerate(kept))
        else:
            blocks.append((para, PARAGRAPH))
    return blocks


def chunk_text(text: str, count: TokenCounter, max_tokens: int = 200, overlap: int = 32) -> list[Chunk]:
    """Structure-respecting chunks of at most `max_tokens` tokens each (see the module's invariant)."""
    fitted = _fit(_blocks(text), count, max_tokens)
    packer = _Packer(count, max_tokens, overlap)
    for piece in fitted:
        packer.add(piece)
    return [Chunk(i, c) for i, c in enumerate(packer.finish())]


@dataclass
class _Piece:
    text: str
    size: int
    sep: str  # what joins it to the piece before it in the text
    heading: bool = False  # it opens a heading section: a new chunk
    lead: bool = False  # it introduces what follows (a heading, a header block): never a chunk's end
    fresh: bool = True  # not already in an emitted chunk (False: the overlap repeated from one)


class _Packer:
    """Packs pieces into chunks: whole while they fit, a new chunk at a heading, `overlap` tokens
    repeated; a lead (`_lead`) is followed in its chunk by the start of what it introduces (the
    piece after it cut to fit, `_LEAD_ROOM` tokens at least, else the lead moves to the next chunk)."""

    def __init__(self, count: TokenCounter, max_tokens: int, overlap: int) -> None:
        self.count, self.max_tokens, self.overlap = count, max_tokens, overlap
        self.chunks: list[str] = []
        self.current: list[_Piece] = []

    @property
    def used(self) -> int:
        return sum(p.size for p in self.current)

    def add(self, piece: _Piece) -> None:
        left: _Piece | None = piece
        while left is not None:
            left = self._place(left)

    def _place(self, piece: _Piece) -> "_Piece | None":
        """Put `piece` (or its first part) in the current chunk; what is left of it to place next."""
        overflow = self.used + piece.size > self.max_tokens
        if any(p.fresh for p in self.current) and (overflow or piece.heading):
            leads = _trailing_leads(self.current)
            content = any(p.fresh and not p.lead for p in self.current)
            if leads and content and (piece.heading or self.max_tokens - self.used < _lead_room(self.max_tokens)):
                self._emit(self.current[: len(self.current) - len(leads)], overlap=False)
                self.current = leads  # the leads open the next chunk, with what they introduce
                return piece
            if leads and overflow:  # the start of what the leads introduce joins them
                head, rest = self._cut(piece, self.max_tokens - self.used)
                self.current += [head] if head else []
                self._emit(self.current, overlap=not piece.heading)
                return rest
            if content:
                self._emit(self.current, overlap=not piece.heading)
        if not any(p.fresh for p in self.current) and self.used + piece.size > self.max_tokens:
            self.current = []  # the overlap would push this chunk over budget: drop it
        self.current.append(piece)
        return None

    def _emit(self, pieces: list[_Piece], overlap: bool = True) -> None:
        """Close a chunk of `pieces`; the next one starts with their last `overlap` tokens, or
        with nothing (at a heading, or before leads moved to it)."""
        self.chunks.append(_join([(p.text, p.size, p.sep) for p in pieces]))
        tail, _ = _tail([(p.text, p.size, p.sep) for p in pieces], self.overlap if overlap else 0)
        self.current = [_Piece(text, size, sep, fresh=False) for text, size, sep in tail]

    def _cut(self, piece: _Piece, room: int) -> tuple["_Piece | None", "_Piece | None"]:
        """`piece` as its first words that fit in `room` tokens and the rest (None when empty)."""
        spans = list(re.finditer(r"\S+", piece.text))
        take = min(len(spans) - 1, int(len(spans) * room / max(piece.size, 1)))
        while take > 0:
            head = piece.text[: spans[take - 1].end()]
            rest = piece.text[spans[take].start() :]
            size, rest_size = self.count([head, rest])
            if size <= room and rest_size <= self.max_tokens:
                joiner = LINE if "\n" in piece.text[spans[take - 1].end() : spans[take].start()] else SPACE
                return (
                    _Piece(head, size, piece.sep, piece.heading, piece.lead),
                    _Piece(rest, rest_size, joiner, lead=piece.lead),
                )
            take -= max(1, take // 8)
        return None, piece

    def finish(self) -> list[str]:
        if any(p.fresh for p in self.current):
            self.chunks.append(_join([(p.text, p.size, p.sep) for p in self.current]))
        return self.chunks


def _lead_room(max_tokens: int) -> int:
    """The least room after a lead worth filling with the start of what it introduces."""
    return max_tokens // 4


def _trailing_leads(pieces: list[_Piece]) -> list[_Piece]:
    """The fresh lead pieces at the end of `pieces`."""
    n = len(pieces)
    while n and pieces[n - 1].lead and pieces[n - 1].fresh:
        n -= 1
    return pieces[n:]


def _fit(blocks: list[tuple[str, str]], count: TokenCounter, max_tokens: int) -> list[_Piece]:
    """Blocks as pieces no longer than `max_tokens`, with their token counts and the separators
    that join them to the piece before, flagged when they open a heading section or are leads."""
    out: list[_Piece] = []
    for (block, sep), size in zip(blocks, _counted(count, [b for b, _ in blocks])):
        heading, lead = bool(_HEADING.match(block)), _lead(block)
        if size <= max_tokens:
            out.append(_Piece(block, size, sep, heading, lead))
            continue
        parts = _split_long(block, count, max_tokens)
        out.extend(
            _Piece(part, part_size, sep if i == 0 else joiner, heading and i == 0, lead)
            for i, (part, part_size, joiner) in enumerate(parts)
        )
    return out


# A header field: "From: ...", "Sent by: ...", "cc:" (a short label, a colon, white space or nothing)
_FIELD = re.compile(r"^\*{0,2}[A-Za-z][A-Za-z-]*(?: [A-Za-z-]+){0,2}:\*{0,2}(?:\s|$)")


def _lead(block: str) -> bool:
    """Whether a block introduces what follows: a heading, or a header block (a mail's From:/To:/
    Date: lines; a forwarded mail's, its banner or sender line above them): two fields at least,
    every line a field but the first."""
    if _HEADING.match(block):
        return True
    lines = [line.strip() for line in block.split("\n") if line.strip()]
    fields = sum(1 for line in lines if _FIELD.match(line))
    return fields >= 2 and all(_FIELD.match(line) for line in lines[1:])


def _counted(count: TokenCounter, texts: list[str]) -> list[int]:
    """`count(texts)`, COUNT_SLICE texts per call."""
    return [n for start in range(0, len(texts), COUNT_SLICE) for n in count(texts[start : start + COUNT_SLICE])]


def _split_long(block: str, count: TokenCounter, max_tokens: int) -> list[tuple[str, int, str]]:
    """`block` in pieces of at most `max_tokens`, each with its count and what joins it to the one before."""
    sentences = _sentences(block)
    out: list[tuple[str, int, str]] = []
    for (sentence, sep), size in zip(sentences, _counted(count, [s for s, _ in sentences])):
        if size <= max_tokens:
            out.append((sentence, size, sep))
        else:
            out.extend(_cut(sentence, size, sep, count, max_tokens))
    return out


def _sentences(block: str) -> list[tuple[str, str]]:
    """The block's sentences, each with what joined it to the one before: a space where the text
    had whitespace (as the block's lines are joined), nothing where it had none (CJK)."""
    out: list[tuple[str, str]] = []
    start, sep = 0, SPACE
    for end in _SENTENCE.finditer(block):
        if block[start : end.start()].strip():
            out.append((block[start : end.start()], sep))
        start, sep = end.end(), SPACE if end.group() else ""
    if block[start:].strip():
        out.append((block[start:], sep))
    return out


def _cut(text: str, size: int, sep: str, count: TokenCounter, max_tokens: int) -> list[tuple[str, int, str]]:
    """`text`, counted `size` tokens, in pieces of at most `max_tokens`: runs of whole words, or,
    for a text with no space, runs of characters; a piece still over the budget is cut again."""
    words = text.split()
    if len(words) > 1:
        step = max(1, int(len(words) * max_tokens / max(size, 1)))
        pieces = [(" ".join(words[i : i + step]), SPACE) for i in range(0, len(words), step)]
    else:
        word = words[0] if words else text
        step = max(1, math.ceil(len(word) / math.ceil(size * 1.1 / max_tokens)))  # ~10% under the budget each
        pieces = [(word[i : i + step], "") for i in range(0, len(word), step)]
    pieces[0] = (pieces[0][0], sep)
    out: list[tuple[str, int, str]] = []
    for (piece, joiner), n in zip(pieces, _counted(count, [p for p, _ in pieces])):
        if n <= max_tokens or len(piece) == 1:
            out.append((piece, n, joiner))
        else:
            out.extend(_cut(piece, n, joiner, count, max_tokens))
    return out


def _tail(pieces: list[tuple[str, int, str]], overlap: int) -> tuple[list[tuple[str, int, str]], int]:
    """About `overlap` tokens from the end: whole pieces while they fit, else the last words (or,
    in text without spaces, characters) of one."""
    kept: list[tuple[str, int, str]] = []
    used = 0
    for piece, size, sep in reversed(pieces):
        if used + size > overlap:
            if not kept and overlap > 0:
                words = piece.split()
                if len(words) > 1:
                    take = int(len(words) * overlap / max(size, 1))
                    tail = " ".join(words[-take:]) if take else ""
                else:  # no space to cut at (CJK): the last characters
                    take = int(len(piece) * overlap / max(size, 1))
                    tail = piece[-take:] if take else ""
                if tail:
                    kept.append((tail, overlap, sep))
                    used = overlap
            break
        kept.insert(0, (piece, size, sep))
        used += size
    return kept, used


def _join(pieces: list[tuple[str, int, str]]) -> str:
    """The pieces with the separators they had in the text (the first one's is dropped)."""
    return "".join(sep + piece if i else piece for i, (piece, _size, sep) in enumerate(pieces))
