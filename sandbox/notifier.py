"""Posts webhook notifications for the emulated services, from one background thread, in order.

Graph change notifications and Drive push messages are sent after the change that caused them,
never from inside it (mutations hold the workspace lock); `delay` lets a fault hold one back so
that later ones overtake it. A failed post is dropped, as the real services do. `close` ends the
thread and its connections (the sandbox closes every notifier when it stops).
"""

from __future__ import annotations

import logging
import queue
import threading

import httpx

log = logging.getLogger(__name__)


class Notifier:
    """A queue of POSTs and the thread that sends them (started on first use)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.posted = 0  # posts answered 2xx, for tests
        self._outbox: queue.Queue[tuple[str, bytes, dict[str, str]] | None] = queue.Queue()  # None: close
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def post(self, url: str, body: bytes, headers: dict[str, str], delay: float = 0.0) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name=f"sandbox-{self.name}")
                self._thread.start()
        if delay:
            threading.Timer(delay, self._outbox.put, args=((url, body, headers),)).start()
        else:
            self._outbox.put((url, body, headers))

    def close(self) -> None:
        """Stop once what is queued is sent, closing the connections; posts after it are not sent."""
        self._outbox.put(None)

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while (post := self._outbox.get()) is not None:
                url, body, headers = post
                try:
                    if client.post(url, content=body, headers=headers).is_success:
                        self.posted += 1
                except httpx.HTTPError as exc:
                    log.debug("%s: post to %s failed: %s", self.name, url, exc)
