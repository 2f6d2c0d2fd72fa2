"""The workspace every sandbox serves unless given another: each service seeded from the shipped
sample data (Slack export, Enron mailboxes) and its own generated files.

Apart from `workspace.py` so that the workspace, which every service module imports, imports none of them.
"""

from __future__ import annotations

from pathlib import Path

from . import drive, gmail, graph, graph_files, graph_teams, slack
from .workspace import DATA_DIR, Workspace


def sample_workspace(data_dir: Path = DATA_DIR) -> Workspace:
    """The workspace seeded from the shipped sample data (Slack export, Enron mailboxes)."""
    ws = Workspace()
    slack.seed_sample(ws, data_dir / "slack-export-sample.zip")
    graph.seed_sample(ws, data_dir / "enron-mini.tar.gz")
    gmail.seed_sample(ws, data_dir / "enron-mini.tar.gz")
    drive.seed_sample(ws)
    graph_files.seed_sample(ws)
    graph_teams.seed_sample(ws)
    return ws
