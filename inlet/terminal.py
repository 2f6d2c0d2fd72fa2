"""What the `inlet` command writes is text: control and escape characters in it are made visible.

Invariant: while the command runs, every character written to stdout and stderr through
`sys.stdout` / `sys.stderr` (click, logging, print) passes `visible()`, so synced content (a mail
subject, a Slack message, a file name, an error a service sent) cannot drive the operator's
terminal: no OSC 52 clipboard write, no CSI clear-screen or colours, no OSC 8 hyperlink, no C1
control (`\\x9b` is a CSI too), no bidirectional override that reorders what is shown. This holds
on a terminal and when redirected to a file alike. It is one rule at the stream level, not a
filter per command. The one writer of real escape sequences, the progress display (rich), draws
on the unwrapped stream (`raw`) and shows only counts and source names.
"""

from __future__ import annotations

import io
import re
import sys
from typing import Any, TextIO

# C0 controls but newline and tab, DEL, C1 controls, and the Unicode bidi embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with each control or escape character replaced by its `\\xNN` / `\\uNNNN` spelling."""
    return _CONTROL.sub(_shown, text)


def one_line(text: str) -> str:
    """`visible(text)` with its newlines and tabs written `\\n` and `\\t` too: a name, title or reason
    shown on one line of a listing stays on that line (a file name with a newline forges none)."""
    return visible(text).replace("\n", "\\n").replace("\t", "\\t")


class VisibleStream(io.TextIOBase):
    """A text stream that writes `visible(text)` to the stream it wraps; the rest is the wrapped one's."""

    def __init__(self, wrapped: TextIO) -> None:
        super().__init__()
        self.wrapped = wrapped

    def write(self, text: str) -> int:
        self.wrapped.write(visible(text))
        return len(text)

    def flush(self) -> None:
        self.wrapped.flush()

    def isatty(self) -> bool:
        return self.wrapped.isatty()

    def fileno(self) -> int:
        return self.wrapped.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.wrapped, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.wrapped, "errors", None)

    def __getattr__(self, name: str) -> Any:  # buffer (binary protocols such as MCP on stdio), name, mode
        return getattr(self.wrapped, name)


def make_visible() -> None:
    """Wrap `sys.stdout` and `sys.stderr` (idempotent); called as the command starts."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, VisibleStream):
            setattr(sys, name, VisibleStream(stream))


def raw(stream: TextIO) -> TextIO:
    """The stream under a `VisibleStream` (for the progress display's own escape sequences)."""
    return stream.wrapped if isinstance(stream, VisibleStream) else stream
