"""`inlet status` (prose) and the console's overview name the daemon holding each source's lease on
PostgreSQL, and when that lease runs out (real server, tests/servers.py)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from inlet.cli import cli
from inlet.config import load_config
from inlet.storage import open_backend
from inlet.storage.postgres.leases import PgLeases
from inlet.server.console import overview


def test_status_and_console_show_the_lease_holder(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[index]\ndatabase_url = "{database_url}"\nchroma_url = "http://unused"\n'
        f'[[sources]]\nname = "notes"\ntype = "files"\npath = "{tmp_path / "docs"}"\n'
        f'[[sources]]\nname = "idle"\ntype = "files"\npath = "{tmp_path / "docs"}"\n'
    )
    settings = load_config(config)
    leases = PgLeases(settings.index, 30.0)
    state = open_backend(settings.index).state()
    try:
        with leases.hold("notes"):
            result = CliRunner().invoke(cli, ["status", "--config", str(config)])
            assert result.exit_code == 0, result.output
            notes, idle = result.output.split("idle (files)")
            assert f"held by {leases.holder} (lease until 20" in notes and "held by" not in idle
            rows = {s["name"]: s for s in overview(settings, state)["sources"]}
            assert rows["notes"]["holder"]["holder"] == leases.holder and rows["idle"]["holder"] is None
        assert "held by" not in CliRunner().invoke(cli, ["status", "--config", str(config)]).output
    finally:
        leases.close()
        state.close()
