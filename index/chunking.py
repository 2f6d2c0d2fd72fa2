"""Splitting documents into passages the model can embed whole.

Chunks follow the text's own structure: a heading starts a new chunk, paragraphs (or, in a chat
thread, messages) are packed whole while they fit the token budget, and only a block that is too
long by itself is split by sentences, then by tokens. Consecutive chunks share `overlap` tokens of
context so an answer that straddles a boundary is still found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TokenCounter = Callable[[Sequence[str]], list[int]]

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str


def approx_tokens(texts: Sequence[str]) -> list[int]:
    """A tokenizer-free estimate (about 1.3 word pieces per word), for tests and tools."""
    return [int(len(t.split()) * 1.3) + 1 for t in texts]


def split_blocks(text: str) -> list[str]:
    """Paragraphs (blank-line separated); a paragraph of several message lines stays one block
    unless it is long, in which case each line (a chat message, a list item) becomes a block."""
    blocks: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        para = para.strip("\n")
        if not para.strip():
            continue
        lines = para.split("\n")
        if len(lines) > 1 and (len(para) > 600 or any(_HEADING.match(line) for line in lines)):
            blocks.extend(line for line in lines if line.strip())
        else:
            blocks.append(para)
    return blocks


def chunk_text(text: str, count: TokenCounter, max_tokens: int = 200, overlap: int = 32) -> list[Chunk]:
    """Structure-respecting chunks of at most about `max_tokens` tokens each."""
    pieces = _fit(split_blocks(text), count, max_tokens)
    if not pieces:
        return []
    sizes = count([p for p, _ in pieces])
    chunks: list[str] = []
    current: list[tuple[str, int]] = []
    used = 0
    fresh = False  # does `current` hold anything not already emitted?
    for (piece, heading), size in zip(pieces, sizes):
        if current and fresh and (used + size > max_tokens or heading):
            chunks.append(_join(current))
            current, used = _tail(current, overlap) if not heading else ([], 0)
            fresh = False
        if not fresh and used + size > max_tokens:
            current, used = [], 0       # the overlap would push this chunk over budget: drop it
        current.append((piece, size))
        used += size
        fresh = True
    if fresh:
        chunks.append(_join(current))
    return [Chunk(i, c) for i, c in enumerate(chunks)]


def _fit(blocks: list[str], count: TokenCounter, max_tokens: int) -> list[tuple[str, bool]]:
    """Blocks no longer than `max_tokens`, each flagged when it opens a heading section."""
    out: list[tuple[str, bool]] = []
    for block, size in zip(blocks, count(blocks)):
        heading = bool(_HEADING.match(block))
        if size <= max_tokens:
            out.append((block, heading))
            continue
        parts = _split_long(block, count, max_tokens)
        out.extend((part, heading and i == 0) for i, part in enumerate(parts))
    return out


def _split_long(block: str, count: TokenCounter, max_tokens: int) -> list[str]:
    sentences = [s for s in _SENTENCE.split(block) if s.strip()]
    out: list[str] = []
    for sentence, size in zip(sentences, count(sentences)):
        if size <= max_tokens:
            out.append(sentence)
            continue
        words = sentence.split()
        step = max(1, int(len(words) * max_tokens / max(size, 1)))
        out.extend(" ".join(words[i:i + step]) for i in range(0, len(words), step))
    return out


def _tail(pieces: list[tuple[str, int]], overlap: int) -> tuple[list[tuple[str, int]], int]:
    """About `overlap` tokens from the end: whole pieces while they fit, else the last words of one."""
    kept: list[tuple[str, int]] = []
    used = 0
    for piece, size in reversed(pieces):
        if used + size > overlap:
            if not kept and overlap > 0:
                words = piece.split()
                take = int(len(words) * overlap / max(size, 1))
                if take:
                    kept.append((" ".join(words[-take:]), overlap))
                    used = overlap
            break
        kept.insert(0, (piece, size))
        used += size
    return kept, used


def _join(pieces: list[tuple[str, int]]) -> str:
    return "\n\n".join(p for p, _ in pieces)
