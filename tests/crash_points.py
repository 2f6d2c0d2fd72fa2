"""Runs the real `inlet` command line with one breakpoint, for the SIGKILL crash matrix.

    python tests/crash_points.py POINT K FD -- backfill SOURCE ...

When the run reaches POINT for the K-th time, this process writes "POINT K" to file descriptor FD
and waits there; the test reads the line and sends it SIGKILL, so the kill lands exactly at the
point (a sleep-based kill would land anywhere, or nowhere). Nothing of inlet is replaced: the
breakpoint is a `sys.settrace` hook, as a debugger sets one, watching these points:

- startup:     a run begins (`Engine._run_locked` is entered: the index and state are open)
- embedding:   a batch's chunks are about to be embedded (`Index._encode`)
- batch:       a batch's vectors are in Chroma, its catalog commit not yet made
- checkpoint:  the batch before a checkpoint is committed, the checkpoint not yet written
- prune:       a full pass's prune has deleted vectors, its catalog commit not yet made

A run that never reaches POINT K simply finishes.

A trace hook costs a Python call for every Python call the process makes (it doubled the CPU time
of importing torch, sentence-transformers and the SDKs), so the modules a run needs are imported
first and the hook is set just before the command line runs: the points are all inside the run.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import CodeType, FrameType
from typing import Any

from inlet.index.store import Index
from inlet.sync.engine import Engine, _CheckpointWriter

# point -> (function, the event that fires it)
POINTS: dict[str, tuple[Any, str]] = {
    "startup": (Engine._run_locked, "call"),
    "embedding": (Index._encode, "call"),
    "batch": (Index._write_vectors, "return"),
    "checkpoint": (_CheckpointWriter.offer, "call"),
    "prune": (Index._delete_vectors, "return"),
}


class Breakpoint:
    def __init__(self, point: str, k: int, fd: int) -> None:
        function, self.event = POINTS[point]
        self.code: CodeType = function.__code__
        self.prune_code = Index.prune.__code__
        self.point, self.k, self.fd = point, k, fd
        self.hits = 0
        self.lock = threading.Lock()

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code is not self.code:
            return None
        if self.point == "prune" and not self._inside_prune(frame):
            return None
        if self.event == "call":
            self._hit()
            return None
        frame.f_trace_lines = False
        return self._on_return

    def _on_return(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "return":
            self._hit()
        return self._on_return

    def _inside_prune(self, frame: FrameType) -> bool:
        caller: FrameType | None = frame.f_back
        while caller is not None:
            if caller.f_code is self.prune_code:
                return True
            caller = caller.f_back
        return False

    def _hit(self) -> None:
        with self.lock:
            self.hits += 1
            if self.hits != self.k:
                return
        os.write(self.fd, f"{self.point} {self.k}\n".encode())
        threading.Event().wait()  # the test's SIGKILL ends the process here


def preload() -> None:
    """Import what a run imports lazily (the model's libraries, every connector and its SDK)
    before the trace hook is set: an import runs none of the watched functions."""
    from inlet.connectors.registry import available

    for module in ("torch", "sentence_transformers", "onnxruntime"):
        importlib.import_module(module)
    for entry in available().values():
        entry.load()


def main() -> None:
    point, k, fd, separator, *argv = sys.argv[1:]
    assert separator == "--", "usage: crash_points.py POINT K FD -- inlet arguments"
    from inlet.cli import main as inlet

    preload()
    hook = Breakpoint(point, int(k), int(fd))
    threading.settrace(hook.trace)
    sys.settrace(hook.trace)
    sys.argv = ["inlet", *argv]
    inlet()


if __name__ == "__main__":
    main()
