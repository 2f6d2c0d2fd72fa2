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
