"""Splitting documents into passages the model can embed whole.

Invariant: no chunk holds more than `max_tokens` tokens (the sum of its pieces' counts by the
caller's `count`, the overlap it repeats included), whatever the text.

Chunks follow the text's own structure: a heading starts a new chunk, paragraphs (or, in a chat
thread, messages) are packed whole while they fit the token budget, and only a block that is too
long by itself is split by sentences (`. ! ?` before a capital; Chinese and Japanese `。！？；`,
which no space follows), then by words, and a piece with no space in it (a line of Chinese, a hex
dump, a `data:` URI) by characters: each piece is counted, and cut again while it is over the
budget. Pieces keep what joined them in the text (nothing between two Chinese sentences).
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
    if not fitted:
        return []
    pieces = [(piece, heading, sep) for piece, heading, sep, _ in fitted]
    sizes = [size for *_, size in fitted]  # each text counted once
    chunks: list[str] = []
    current: list[tuple[str, int, str]] = []
    used = 0
    fresh = False  # does `current` hold anything not already emitted?
    for (piece, heading, sep), size in zip(pieces, sizes):
        if current and fresh and (used + size > max_tokens or heading):
            chunks.append(_join(current))
            current, used = _tail(current, overlap) if not heading else ([], 0)
            fresh = False
        if not fresh and used + size > max_tokens:
            current, used = [], 0  # the overlap would push this chunk over budget: drop it
        current.append((piece, size, sep))
        used += size
        fresh = True
    if fresh:
        chunks.append(_join(current))
    return [Chunk(i, c) for i, c in enumerate(chunks)]


def _fit(blocks: list[tuple[str, str]], count: TokenCounter, max_tokens: int) -> list[tuple[str, bool, str, int]]:
    """Blocks no longer than `max_tokens`, each flagged when it opens a heading section, with the
    separator that joins it to the piece before and its token count."""
    out: list[tuple[str, bool, str, int]] = []
    for (block, sep), size in zip(blocks, _counted(count, [b for b, _ in blocks])):
        heading = bool(_HEADING.match(block))
        if size <= max_tokens:
            out.append((block, heading, sep, size))
            continue
        parts = _split_long(block, count, max_tokens)
        out.extend(
            (part, heading and i == 0, sep if i == 0 else joiner, part_size)
            for i, (part, part_size, joiner) in enumerate(parts)
        )
    return out


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
