"""The kit's Google credentials loading: each bad file is a ConfigError naming the source and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inlet.connectors.kit.google import load_credentials
from inlet.errors import ConfigError

SCOPES = ["https://www.googleapis.com/auth/gmail.readonly"]


def test_authorized_user_keeps_its_token_uri(tmp_path: Path) -> None:
    path = tmp_path / "user.json"
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "c",
                "client_secret": "s",
                "refresh_token": "r",
                "token_uri": "https://127.0.0.1:9/token",
            }
        )
    )
    creds = load_credentials(path, None, "mail", SCOPES)
    assert creds.token_uri == "https://127.0.0.1:9/token" and creds.refresh_token == "r"


@pytest.mark.parametrize(
    ("content", "subject", "problem"),
    [
        (None, None, "cannot read"),
        ("{not json", None, "cannot read"),
        (json.dumps({"type": "external_account"}), None, "neither a service_account nor an authorized_user"),
        (
            json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}),
            "ann@example.com",
            "key 'subject' needs service-account credentials",
        ),
    ],
)
def test_bad_files_name_source_and_key(tmp_path: Path, content: str | None, subject: str | None, problem: str) -> None:
    path = tmp_path / "creds.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=problem) as err:
        load_credentials(path, subject, "mail", SCOPES)
    assert "source 'mail'" in str(err.value)


AUTHORIZED_USER = {"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}


def _config(tmp_path: Path, kind: str, credentials: dict[str, str], more: str = "") -> Path:
    (tmp_path / "creds.json").write_text(json.dumps(credentials))
    reads = 'mailboxes = ["ann@example.com"]\n' if kind == "gmail" else ""
    config = tmp_path / "config.toml"
    config.write_text(f'[[sources]]\nname = "g"\ntype = "{kind}"\ncredentials_file = "creds.json"\n{reads}{more}')
    return config


def test_a_drive_subject_with_an_authorized_user_file_stops_every_run_before_it_starts(tmp_path: Path) -> None:
    """The file is local: `check_local` (before every backfill, sync and daemon) reads its type, so
    the mistake is a configuration error (exit 2), not a failed run the daemon retries for ever."""
    from inlet.config import load_config, preflight
    from inlet.sandbox.drive_auth import service_account_info
    from inlet.sandbox.workspace import Workspace

    config = _config(tmp_path, "google_drive", AUTHORIZED_USER, 'subject = "ann@example.com"\n')
    with pytest.raises(ConfigError) as err:
        preflight(load_config(config, check_paths=True), ["g"], {})
    assert f"{config}: source 'g': key 'subject' needs service-account credentials" in str(err.value)
    preflight(load_config(_config(tmp_path, "google_drive", AUTHORIZED_USER), check_paths=True), ["g"], {})
    account = service_account_info(Workspace(), "https://127.0.0.1:9/token")
    preflight(load_config(_config(tmp_path, "google_drive", account, 'subject = "a@example.com"\n')), ["g"], {})


def test_gmail_with_an_authorized_user_file_stops_every_run_before_it_starts(tmp_path: Path) -> None:
    """Gmail reads each mailbox through delegation: it names its file, having no `subject` key."""
    from inlet.config import load_config, preflight
    from inlet.sandbox.drive_auth import service_account_info
    from inlet.sandbox.workspace import Workspace

    config = _config(tmp_path, "gmail", AUTHORIZED_USER)
    with pytest.raises(ConfigError) as err:
        preflight(load_config(config, check_paths=True), ["g"], {})
    message = str(err.value)
    assert f"{config}: source 'g': key 'credentials_file': {tmp_path / 'creds.json'} is an authorized_user" in message
    assert "'subject'" not in message
    account = service_account_info(Workspace(), "https://127.0.0.1:9/token")
    preflight(load_config(_config(tmp_path, "gmail", account), check_paths=True), ["g"], {})
