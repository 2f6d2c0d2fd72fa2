"""The config `inlet sandbox --write-config` writes: stamped, so the sandbox overwrites only a file
it wrote itself and nobody edited since, and an admin API key kept across restarts.

The stamp is the first line, `# written by inlet sandbox, sha256 <hex>`, the digest of the rest of
the file: an edit anywhere changes the digest, and the sandbox then refuses (exit 2, `--force`
overwrites). The key lives in the config's index folder (private, 0600), never in the TOML.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from inlet.errors import ConfigError
from inlet.storage.private import private_files, private_folder

STAMP = "# written by inlet sandbox, sha256 "
KEY_FILE = "sandbox-admin-key"


def stamped(text: str) -> str:
    """`text` with the stamp line in front."""
    return f"{STAMP}{hashlib.sha256(text.encode()).hexdigest()}\n{text}"


def written_unchanged(text: str) -> bool:
    """True when `text` is a stamped file whose content still matches its stamp."""
    first, _, rest = text.partition("\n")
    return first.startswith(STAMP) and first[len(STAMP) :] == hashlib.sha256(rest.encode()).hexdigest()


def check_overwrite(path: Path) -> None:
    """`ConfigError` when `path` exists and is not a sandbox config left unchanged."""
    if not path.exists():
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: exists and cannot be read ({exc}); pass --force to overwrite it") from exc
    if not written_unchanged(text):
        raise ConfigError(
            f"{path}: exists and was not written by `inlet sandbox` or was edited since; "
            "not overwriting it (pass --force to overwrite, or choose another path)"
        )


def kept_key(folder: Path) -> str:
    """The sandbox's admin API key kept in `folder` (created 0700 with the key 0600 on first use)."""
    path = folder / KEY_FILE
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        key = ""
    if key:
        return key
    private_folder(folder)
    key = secrets.token_urlsafe(24)
    with private_files():
        path.write_text(key + "\n", encoding="utf-8")
    return key
