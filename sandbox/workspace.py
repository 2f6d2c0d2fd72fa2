"""The one in-memory workspace the emulated services share.

Users are common to all the services (a Slack member, a Drive permission and a mailbox owner are
the same person, matched by email). Each service keeps its own state in its module
(`slack.py`, `drive.py`, `graph.py`) and hangs it on the workspace; every mutation happens under
`ws.lock`, because the HTTP servers, the admin routes and test code touch it from several threads.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"


@dataclass
class User:
    id: str  # Slack-style id, e.g. U0BMYT2FL; also the Graph user id
    email: str
    name: str  # handle, e.g. "abilinski"
    real_name: str
    is_bot: bool = False
    deleted: bool = False

    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[1]


@dataclass
class Workspace:
    domain: str = "example.com"
    team_id: str = "T0SANDBOX1"
    team_name: str = "Sandbox Inc"
    users: dict[str, User] = field(default_factory=dict)  # by id
    clock: Callable[[], float] = time.time  # tests may substitute a fake clock
    lock: threading.RLock = field(default_factory=threading.RLock)
    slack: Any = None  # sandbox.slack.SlackState
    drive: Any = None  # sandbox.drive.DriveState
    mail: Any = None  # sandbox.graph.MailState
    m365_files: Any = None  # sandbox.graph_files_state.FilesState
    teams: Any = None  # sandbox.graph_teams_state.TeamsState
    gmail: Any = None  # sandbox.gmail_state.GmailState
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def add_user(
        self, email: str, name: str, real_name: str = "", user_id: str | None = None, is_bot: bool = False
    ) -> User:
        """Add (or return the existing) user with this email."""
        with self.lock:
            email = email.lower()
            for user in self.users.values():
                if user.email == email:
                    return user
            uid = user_id or f"U{len(self.users) + 1:08d}"
            user = User(id=uid, email=email, name=name, real_name=real_name or name, is_bot=is_bot)
            self.users[uid] = user
            return user

    def user_by_email(self, email: str) -> User | None:
        email = email.lower()
        return next((u for u in self.users.values() if u.email == email), None)
