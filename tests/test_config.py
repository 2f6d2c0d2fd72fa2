from pathlib import Path

import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.config import load_config
from inlet.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


GOOD = """
[index]
path = "store"

[[sources]]
name = "handbook"
type = "files"
path = "docs"
every = "1h"
users = ["Alice@example.com"]
"""


def test_good_config_resolves_paths_relative_to_the_file(tmp_path):
    settings = load_config(write(tmp_path, GOOD))
    assert settings.index.path == (tmp_path / "store").resolve()
    source = settings.source("handbook")
    assert source.path == tmp_path / "docs"
    assert source.acl().users == ["alice@example.com"] and not source.acl().public


@pytest.mark.parametrize(
    "text, expected",
    [
        (GOOD + "colour = 'blue'\n", ["config.toml", "'handbook'", "'colour'", "unknown key"]),
        (GOOD.replace('path = "docs"\n', ""), ["config.toml", "'handbook'", "'path'", "required"]),
        (GOOD.replace('every = "1h"', 'every = "soon"'), ["'handbook'", "'every'"]),
        (GOOD.replace('every = "1h"', 'schedule = "61 * * * *"'), ["'handbook'", "'schedule'"]),
        (GOOD.replace('type = "files"', 'type = "ftp"'), ["'handbook'", "'type'", "ftp", "files"]),
        (GOOD.replace('name = "handbook"', 'name = "Hand Book"'), ["'name'", "[a-z0-9-]+"]),
        (GOOD + GOOD.split("[index]")[1].replace('path = "store"', ""), ["'handbook'", "twice"]),
        (GOOD.replace("[index]", "[index]\nbatch_size = 'big'"), ["[index]", "'batch_size'"]),
        ("[serverr]\n", ["'serverr'"]),
        ("[index\n", ["not valid TOML"]),
        (GOOD + '[daemon]\njitter = "soon"\n', ["[daemon]", "'jitter'", "not a duration"]),
        (GOOD + '[server]\nrate_limit = "fast"\n', ["[server]", "'rate_limit'", "'20/s'"]),
    ],
)
def test_bad_config_names_file_source_and_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    for fragment in expected:
        assert fragment in str(info.value)


def test_a_config_that_is_not_utf8_is_a_configuration_error(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(GOOD, encoding="utf-16")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


@pytest.mark.parametrize("kind", ["folder", "empty file"])
def test_a_ca_bundle_without_certificates_names_its_key(tmp_path, kind):
    bundle = tmp_path / "ca.pem"
    bundle.mkdir() if kind == "folder" else bundle.write_text("")
    text = (
        '[[sources]]\nname = "mail"\ntype = "outlook"\ntenant_id = "t"\nclient_id = "c"\n'
        'client_secret_env = "S"\nmailboxes = ["a@example.com"]\nca_bundle = "ca.pem"\n'
    )
    with pytest.raises(ConfigError, match=r"'mail'.*key 'ca_bundle': .*ca\.pem"):
        load_config(write(tmp_path, text))


def test_the_listening_address_is_not_part_of_the_configuration_digest(tmp_path):
    settings = load_config(write(tmp_path, GOOD))
    moved = settings.model_copy(update={"server": settings.server.model_copy(update={"port": 9, "host": "0.0.0.0"})})
    assert moved.fingerprint() == settings.fingerprint()  # `--port` does not make a daemon's config "another"
    other = settings.model_copy(update={"server": settings.server.model_copy(update={"rate_burst": 7})})
    assert other.fingerprint() != settings.fingerprint()


KEY = '[[server.api_keys]]\nname = "{name}"\nkey_env = "{env}"\nuser = "{name}@example.com"\n'


@pytest.mark.parametrize(
    "keys, said",
    [
        ([("alice-key", "ALICE"), ("alice-key", "BOB")], "name 'alice-key' is used by 2 keys"),
        ([("alice-key", "SHARED"), ("bob-key", "SHARED")], "key_env 'SHARED' is used by 2 keys"),
    ],
)
def test_two_api_keys_with_one_name_or_one_secret_are_refused(tmp_path, keys, said):
    text = GOOD + "".join(KEY.format(name=name, env=env) for name, env in keys)
    with pytest.raises(ConfigError, match=said) as info:
        load_config(write(tmp_path, text))
    assert info.value.exit_code == 2


def test_a_relative_audit_log_is_taken_from_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    settings = load_config(write(tmp_path, GOOD + '[server]\naudit_log = "logs/audit.jsonl"\n'))
    assert settings.server.audit_log == str((tmp_path / "logs" / "audit.jsonl").resolve())
    dash = load_config(write(tmp_path, GOOD + '[server]\naudit_log = "-"\n'))
    assert dash.server.audit_log == "-"


def test_api_key_needs_exactly_one_role(tmp_path):
    text = '[[server.api_keys]]\nname = "k"\nkey_env = "K"\nadmin = true\nuser = "a@b.c"\n'
    with pytest.raises(ConfigError, match=r"\[server\].*exactly one"):
        load_config(write(tmp_path, text))


def test_example_config_is_valid():
    example = Path(__file__).parent.parent / "config.example.toml"
    settings = load_config(example)
    assert {s.type for s in settings.sources} >= {"files", "slack", "google_drive", "outlook"}


# --- issue 14: every problem at once, a suggestion, no library prefixes, checks before any run ------
def test_every_problem_is_reported_at_once_with_the_nearest_key(tmp_path):
    text = (
        GOOD.replace("[index]", "[index]\nchunk_token = 100")
        .replace('path = "docs"\n', "")
        .replace('every = "1h"', 'every = "soon"\ncolor = "blue"')
        + "\n[servr]\nport = 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "more)" not in message and "Value error" not in message
    assert "5 problems" in message, message
    assert "'chunk_token': unknown key (did you mean 'chunk_tokens'?)" in message
    assert "'servr' (did you mean 'server'?)" in message
    assert "'path': required key is missing" in message and "'every'" in message
    assert len(message.splitlines()) >= 5


def test_nested_unknown_key_suggests_too(tmp_path):
    text = '[[server.api_keys]]\nname = "k"\nkey_env = "K"\nadmin = true\nadmn = true\n'
    with pytest.raises(ConfigError, match=r"did you mean 'admin'\?"):
        load_config(write(tmp_path, text))


def test_unset_secret_and_missing_folder_are_configuration_errors_before_any_run(tmp_path):
    from inlet.config import preflight

    text = GOOD + ('\n[[sources]]\nname = "chat"\ntype = "slack"\ntoken_env = "INLET_TEST_NO_SUCH_TOKEN"\n')
    settings = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError) as info:
        preflight(settings, ["handbook", "chat"], {})
    message = str(info.value)
    assert "'INLET_TEST_NO_SUCH_TOKEN' (named by key 'token_env') is not set" in message
    assert f"{tmp_path / 'docs'} does not exist" in message
    (tmp_path / "docs").mkdir()
    preflight(settings, ["handbook"], {})


def test_the_cli_exits_2_on_them_and_on_a_config_without_sources(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from inlet.cli import cli

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["sync", "--config", str(write(tmp_path, GOOD))])
    assert result.exit_code == 2 and "does not exist" in result.output, result.output
    empty = tmp_path / "empty.toml"
    empty.write_text('[index]\npath = "store"\n')
    result = runner.invoke(cli, ["sync", "--config", str(empty)])
    assert result.exit_code == 2 and "no [[sources]] configured" in result.output
    result = runner.invoke(cli, ["status", "--config", str(empty)])
    assert result.exit_code == 0 and "no sources configured" in result.output


def test_relative_config_path_gives_absolute_source_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, GOOD)
    assert load_config("config.toml").source("handbook").path == tmp_path / "docs"


# --- issue 28.2: every configured path that does not exist, named with key, source and path -----
MISSING_PATHS = """
[index]
path = "store"

[server.oauth]
issuer = "https://idp.example.com"
audience = "https://inlet.example.com"
ca_bundle = "no-such-idp-ca.pem"

[[sources]]
name = "handbook"
type = "files"
path = "no-such-folder"

[[sources]]
name = "drive"
type = "google_drive"
credentials_file = "no-such-service-account.json"

[[sources]]
name = "mail"
type = "outlook"
tenant_id = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret_env = "OUTLOOK_CLIENT_SECRET"
mailboxes = ["support@example.com"]
ca_bundle = "no-such-ca.pem"
"""


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "--json"],
        ["sync"],
        ["serve"],
        ["daemon"],
        ["backfill", "drive"],
        ["search", "budget"],
        ["mcp"],
    ],
)
def test_every_missing_configured_path_is_exit_2_before_anything_runs(tmp_path, command):
    from click.testing import CliRunner

    from inlet.cli import cli

    config = write(tmp_path, MISSING_PATHS)
    result = CliRunner().invoke(cli, [*command, "--config", str(config)])
    assert result.exit_code == 2, result.output
    for source, key, name in [
        ("handbook", "path", "no-such-folder"),
        ("drive", "credentials_file", "no-such-service-account.json"),
        ("mail", "ca_bundle", "no-such-ca.pem"),
    ]:
        assert f"source {source!r}: key {key!r}: {tmp_path / name} does not exist" in result.output, result.output
    assert f"[server.oauth] key 'ca_bundle': {tmp_path / 'no-such-idp-ca.pem'} does not exist" in result.output
    assert str(config) in result.output and "Traceback" not in result.output
    assert not (tmp_path / "store").exists()  # nothing ran


@pytest.mark.parametrize("bundle", ["empty", "text", "folder"])
def test_an_oauth_ca_bundle_that_holds_no_certificates_is_exit_2_naming_the_key(tmp_path, bundle):
    """probe33e F6: an empty, non-PEM or folder `ca_bundle` passed the check and `inlet serve` died
    with a traceback; it is the configuration error a source's bundle gets."""
    from click.testing import CliRunner

    from inlet.cli import cli

    path = tmp_path / "idp-ca.pem"
    if bundle == "folder":
        path.mkdir()
    else:
        path.write_text("" if bundle == "empty" else "not a certificate\n")
    config = write(tmp_path, f'[server.oauth]\nissuer = "https://idp.example.com/"\nca_bundle = "{path.name}"\n')
    result = CliRunner().invoke(cli, ["status", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert f"[server.oauth] key 'ca_bundle': {path}" in result.output and "Traceback" not in result.output


def test_a_new_connector_gets_the_path_check_from_its_config_path_type(tmp_path):
    from inlet.connectors.base import ConfigPath, SourceConfig, missing_paths

    class Config(SourceConfig):
        key_file: ConfigPath | None = None
        extra_cas: list[ConfigPath] = []

    (tmp_path / "there.pem").write_text("x")
    config = Config(
        name="x", type="x", key_file=tmp_path / "gone.pem", extra_cas=[tmp_path / "there.pem", tmp_path / "gone2.pem"]
    )
    assert missing_paths(config) == [("key_file", tmp_path / "gone.pem"), ("extra_cas", tmp_path / "gone2.pem")]


def test_a_bad_key_does_not_hide_a_missing_path_and_both_name_the_source_alike(tmp_path):
    from click.testing import CliRunner

    from inlet.cli import cli

    (tmp_path / "not-a-ca.pem").write_text("hello\n")
    bad = (
        MISSING_PATHS.replace("no-such-ca.pem", "not-a-ca.pem")  # exists, but holds no certificate
        .replace('type = "files"', 'type = "files"\nmax_file_bytes = "big"')
        .replace("[index]", "[index]\nbatch_size = -1")
    )
    result = CliRunner().invoke(cli, ["status", "--config", str(write(tmp_path, bad))])
    assert result.exit_code == 2, result.output
    for problem in [
        f"source 'mail': key 'ca_bundle': {tmp_path / 'not-a-ca.pem'} is not a PEM file",
        f"source 'drive': key 'credentials_file': {tmp_path / 'no-such-service-account.json'} does not exist",
        "source 'handbook': key 'max_file_bytes':",
        f"source 'handbook': key 'path': {tmp_path / 'no-such-folder'} does not exist",
        f"[server.oauth] key 'ca_bundle': {tmp_path / 'no-such-idp-ca.pem'} does not exist",
        "[index] key 'batch_size':",
    ]:
        assert problem in result.output, result.output
    assert "[[sources]]" not in result.output


def test_a_secret_pasted_as_an_env_value_is_never_echoed(tmp_path):
    from inlet.config import preflight

    text = GOOD + ('\n[[sources]]\nname = "chat"\ntype = "slack"\ntoken_env = "xoxb-123-very-private"\n')
    settings = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError) as info:
        preflight(settings, ["chat"], {})
    message = str(info.value)
    assert "source 'chat': key 'token_env' must name an environment variable (such as TOKEN)" in message
    assert "very-private" not in message
    with pytest.raises(ConfigError) as direct:
        settings.connector("chat", {}).secret("token_env")
    assert "must name an environment variable" in str(direct.value) and "very-private" not in str(direct.value)


@pytest.mark.parametrize(
    "url", ["postgresql://u:Pw-In-Url@[::1/db", "mysql://u:Pw-In-Url@h/db", "postgresql://u:Pw-In-Url%zz@h/d"]
)
def test_a_database_url_that_cannot_be_read_is_a_config_error_that_shows_no_password(tmp_path, url: str) -> None:
    text = f'[index]\ndatabase_url = "{url}"\nchroma_url = "http://localhost:1"\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert "[index] key 'database_url'" in str(info.value) and "Pw-In-Url" not in str(info.value)


def test_an_unset_database_password_is_a_config_error_naming_file_and_key(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from inlet.cli import cli

    monkeypatch.delenv("INLET_TEST_NO_SUCH_PASSWORD", raising=False)
    config = tmp_path / "pg.toml"
    config.write_text(
        '[index]\ndatabase_url = "postgresql://inlet@127.0.0.1:1/inlet"\n'
        'database_password_env = "INLET_TEST_NO_SUCH_PASSWORD"\nchroma_url = "http://127.0.0.1:1"\n'
    )
    result = CliRunner().invoke(cli, ["status", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert str(config) in result.output and "'database_password_env'" in result.output
    assert "'INLET_TEST_NO_SUCH_PASSWORD' (named by key 'database_password_env') is not set" in result.output


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('max_file_bytes = "50"', "key 'max_file_bytes': must be a whole number, not the string '50'"),
        ('public = "yes"', "key 'public': must be true or false, not the string 'yes'"),
    ],
)
def test_a_number_or_boolean_written_as_a_string_is_an_error(tmp_path: Path, line: str, said: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[[sources]]\nname = "d"\ntype = "files"\npath = "{tmp_path.as_posix()}"\n{line}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert said in str(caught.value) and str(config) in str(caught.value)


_FILES = 'name = "d"\ntype = "files"\npath = "PATH"\n'
_SLACK = 'name = "s"\ntype = "slack"\ntoken_env = "T"\n'


@pytest.mark.parametrize(
    ("table", "line", "said"),
    [
        ("[server]", 'port = "8484"', "[server] key 'port': must be a whole number, not the string '8484'"),
        ("[server]", 'metrics_public = "yes"', "key 'metrics_public': must be true or false, not the string 'yes'"),
        ("[daemon]", 'max_parallel = "3"', "key 'max_parallel': must be a whole number, not the string '3'"),
        ("[index]", 'batch_size = "64"', "key 'batch_size': must be a whole number, not the string '64'"),
        ("[[server.api_keys]]", 'name = "k"\nkey_env = "K"\nadmin = "true"', "must be true or false"),
        # true/false for a number, a number for true/false: pydantic would read `true` as 1 and `1` as
        # true (`max_file_bytes = true` skipped, and so deleted, every file; `port = true` served on 1)
        ("[server]", "port = true", "[server] key 'port': must be a whole number, not true"),
        ("[server]", "metrics_public = 1", "[server] key 'metrics_public': must be true or false, not the number 1"),
        ("[server]", "header_timeout = false", "[server] key 'header_timeout': must be a number, not false"),
        ("[daemon]", "max_parallel = true", "[daemon] key 'max_parallel': must be a whole number, not true"),
        ("[index]", "batch_size = true", "[index] key 'batch_size': must be a whole number, not true"),
        ("[[sources]]", _FILES + "max_file_bytes = true", "source 'd': key 'max_file_bytes': must be a whole number"),
        ("[[sources]]", _FILES + "checkpoint_every = false", "source 'd': key 'checkpoint_every': must be a whole"),
        ("[[sources]]", _FILES + "public = 1", "source 'd': key 'public': must be true or false, not the number 1"),
        (
            "[[sources]]",
            _SLACK + 'pace = { "conversations.history" = true }',
            "key 'pace': 'conversations.history': must be a number",
        ),
    ],
)
def test_every_table_refuses_a_value_of_the_wrong_kind_rather_than_converting_it(
    tmp_path: Path, table: str, line: str, said: str
) -> None:
    """`metrics_public = "no"` read as false and `"yes"` as true: a security switch is not guessed."""
    config = tmp_path / "c.toml"
    config.write_text(f"{table}\n{line.replace('PATH', tmp_path.as_posix())}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert said in str(caught.value) and str(config) in str(caught.value)


def test_a_whole_number_for_a_number_key_stays_accepted(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[server]\nheader_timeout = 5\n")
    assert load_config(config).server.header_timeout == 5.0


@pytest.mark.parametrize(
    "user",
    ["", "Alice <alice@example.com>", "alice@example.com, bob@example.com", "@example.com", "alice@example.com\u3000"],
)
def test_a_user_keys_user_must_be_one_user(tmp_path: Path, user: str) -> None:
    """`a@x, b@x` would be served as whoever the domain after its last `@` lets see."""
    config = tmp_path / "c.toml"
    config.write_text(f'[[server.api_keys]]\nname = "k"\nkey_env = "K"\nuser = "{user}"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "key 'api_keys.0.user'" in str(caught.value) and "is not one user" in str(caught.value)
    assert str(config) in str(caught.value)


def test_a_rule_over_several_keys_is_said_without_a_made_up_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[[sources]]\nname = "m"\ntype = "microsoft_files"\ntenant_id = "t"\nclient_id = "c"\nclient_secret_env = "X"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert "at least one of 'users', 'sites' or 'drives' is required" in message and "'?'" not in message


_GRAPH_READS = {
    "outlook": 'mailboxes = ["a@example.com"]\n',
    "teams": "",
    "microsoft_files": 'users = ["a@example.com"]\n',
}


def graph_source(tmp_path: Path, kind: str = "outlook", tenant: str = "t", more: str = "") -> Path:
    """A config file holding one Graph source `m` of type `kind`, with the keys `more` adds."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[sources]]\nname = "m"\ntype = "{kind}"\ntenant_id = "{tenant}"\nclient_id = "c"\n'
        f'client_secret_env = "X"\n{_GRAPH_READS[kind]}{more}'
    )
    return config


@pytest.mark.parametrize("tenant", ["", "contoso.onmicrosoft.com/../x", " "])
def test_a_tenant_that_cannot_be_one_is_a_config_error(tmp_path: Path, tenant: str) -> None:
    with pytest.raises(ConfigError, match="key 'tenant_id'"):
        load_config(graph_source(tmp_path, tenant=tenant))


@pytest.mark.parametrize(
    ("kind", "too_long", "longest", "limit"),
    [("outlook", "8d", "7d", "10080"), ("teams", "2h", "1h", "60"), ("microsoft_files", "30d", "29d", "42300")],
)
def test_a_subscription_lifetime_past_graphs_limit_is_a_config_error(
    tmp_path: Path, kind: str, too_long: str, longest: str, limit: str
) -> None:
    """Graph refuses (400) a subscription that would outlive its limit for the resource, so the events
    would never go live: said before anything runs, naming the key, the source, the file and the limit."""
    with pytest.raises(ConfigError) as info:
        load_config(graph_source(tmp_path, kind, more=f'subscription_lifetime = "{too_long}"\n'))
    message = str(info.value)
    assert "key 'subscription_lifetime'" in message and "'m'" in message and "c.toml" in message
    assert f"at most {limit} minutes" in message
    load_config(graph_source(tmp_path, kind, more=f'subscription_lifetime = "{longest}"\n'))


def test_the_example_documents_every_key_of_every_built_in_source_type():
    """A key a connector adds (beyond the keys every source has) appears in its example block,
    set or commented out, so config.example.toml stays the reference an operator copies from."""
    import re

    from inlet.connectors import StaticACLConfig
    from inlet.connectors.registry import connector_class

    text = (Path(__file__).parent.parent / "config.example.toml").read_text()
    documented: dict[str, set[str]] = {}
    for block in re.split(r"^#?\s*\[\[sources\]\]\s*$", text, flags=re.M)[1:]:
        block = re.split(r"^#?\s*\[(?!\[)", block, flags=re.M)[0]  # up to the next table
        kind = re.search(r'^#?\s*type\s*=\s*"([a-z_]+)"', block, flags=re.M)
        if kind:
            documented.setdefault(kind[1], set()).update(re.findall(r"^#?\s*([a-z_][a-z0-9_]*)\s*=", block, flags=re.M))
    common = set(StaticACLConfig.model_fields)
    for kind, keys in documented.items():
        assert not set(connector_class(kind).Config.model_fields) - common - keys, kind
    assert {"files", "slack", "google_drive", "outlook", "microsoft_files", "teams", "gmail"} <= set(documented)


def test_the_example_documents_every_key_of_every_section():
    """Every key of [index], [server], [server.oauth], [[server.api_keys]] and [daemon] appears in
    its table of config.example.toml, set or commented out (sources: the test above)."""
    import re

    from inlet.config import ApiKey, DaemonConfig, IndexConfig, OAuthConfig, ServerConfig

    text = (Path(__file__).parent.parent / "config.example.toml").read_text()
    documented: dict[str, set[str]] = {}
    for header, body in re.findall(r"^#?\s*\[+([a-z_.]+)\]+[^\n]*\n(.*?)(?=^#?\s*\[|\Z)", text, flags=re.M | re.S):
        documented.setdefault(header, set()).update(re.findall(r"^#?\s*([a-z_][a-z0-9_]*)\s*=", body, flags=re.M))
    tables = {
        "index": IndexConfig,
        "server": ServerConfig,
        "server.oauth": OAuthConfig,
        "server.api_keys": ApiKey,
        "daemon": DaemonConfig,
    }
    for table, model in tables.items():
        keys = set(model.model_fields) - {f"{k.rpartition('.')[2]}" for k in tables if k.startswith(f"{table}.")}
        assert not keys - documented.get(table, set()), table


@pytest.mark.parametrize("kind", ["outlook", "teams", "microsoft_files"])
def test_a_plain_http_authority_url_is_a_config_error_naming_source_and_key(tmp_path: Path, kind: str) -> None:
    """msal signs in only through https: an http authority would fail later as refused credentials."""
    config = graph_source(tmp_path, kind, more='authority_url = "http://127.0.0.1:8400"\n')
    with pytest.raises(ConfigError, match=r"source 'm': key 'authority_url': 'http://127.0.0.1:8400' must be an https"):
        load_config(config)
    https = graph_source(tmp_path, kind, more='authority_url = "https://127.0.0.1:8400"\n')
    assert load_config(https).source("m").authority_url == "https://127.0.0.1:8400"


# --- round 22 probe: settings that contradict each other, or loop without pause, are refused ------
_ACL_SOURCES = {
    "files": 'path = "docs"\n',
    "mail_archive": 'path = "mail"\n',
    "slack_export": 'path = "export.zip"\n',
}


@pytest.mark.parametrize("kind", sorted(_ACL_SOURCES))
@pytest.mark.parametrize("listed", ['users = ["alice@example.com"]', 'domains = ["example.com"]'])
def test_public_true_with_users_or_domains_is_a_config_error_not_a_public_source(
    tmp_path: Path, kind: str, listed: str
) -> None:
    """Read permissively, the contradiction gave every item to everyone (a folder meant for a few)."""
    head = f'[[sources]]\nname = "hr"\ntype = "{kind}"\n{_ACL_SOURCES[kind]}'
    config = write(tmp_path, f"{head}public = true\n{listed}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert f"{config}: source 'hr': key 'public': true (every item visible to everyone) cannot be set with" in message
    assert f"'{listed.split()[0]}'" in message
    assert not load_config(write(tmp_path, f"{head}{listed}\n")).source("hr").acl().public
    assert not load_config(write(tmp_path, f"{head}public = false\n{listed}\n")).source("hr").acl().public
    assert load_config(write(tmp_path, f"{head}public = true\n")).source("hr").acl().public


def test_public_true_with_users_is_reported_with_the_sources_other_errors(tmp_path: Path) -> None:
    """Every problem at once: the contradiction is not held back until the other keys are right."""
    text = '[[sources]]\nname = "hr"\ntype = "files"\npath = "docs"\nexlude = ["x"]\nevery = "0s"\n'
    config = write(tmp_path, text + 'public = true\nusers = ["alice@example.com"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert "3 problems" in message and "key 'exlude': unknown key (did you mean 'exclude'?)" in message
    assert "key 'every': '0s' is shorter than '1s'" in message
    assert "source 'hr': key 'public': true (every item visible to everyone) cannot be set with 'users'" in message


def test_uncommenting_the_examples_handbook_readers_restricts_it(tmp_path: Path) -> None:
    """What the example's comment invites (uncomment users / domains) makes the folder private to them."""
    import re

    text = (Path(__file__).parent.parent / "config.example.toml").read_text()
    start = text.index('name = "handbook"')
    end = text.index("[[sources]]", start)
    block = re.sub(r"^# ?((users|domains) = )", r"\1", text[start:end], flags=re.M)
    assert block != text[start:end]
    acl = load_config(write(tmp_path, text[:start] + block + text[end:])).source("handbook").acl()
    assert not acl.public and acl.users == ["alice@example.com"] and acl.domains == ["example.com"]


@pytest.mark.parametrize(
    ("table", "line", "where"),
    [
        ("source", 'every = "0s"', "source 'handbook': key 'every'"),
        ("source", 'every = "0.5s"', "source 'handbook': key 'every'"),
        ("source", 'prune_every = "0m"', "source 'handbook': key 'prune_every'"),
        ("daemon", 'retry_max = "0s"', "[daemon] key 'retry_max'"),
        ("daemon", 'lease = "0s"', "[daemon] key 'lease'"),
        ("slack", 'reconcile_every = "0h"', "source 'chat': key 'reconcile_every'"),
        ("teams", 'reconcile_every = "0d"', "source 'm': key 'reconcile_every'"),
        ("outlook", 'subscription_lifetime = "0s"', "source 'm': key 'subscription_lifetime'"),
    ],
)
def test_a_zero_interval_is_a_config_error_naming_the_key(tmp_path: Path, table: str, line: str, where: str) -> None:
    """A zero `every` made the daemon sync the source without pause (a call storm from a typo)."""
    if table == "source":
        text = GOOD.replace('every = "1h"', line)
    elif table == "daemon":
        text = f"{GOOD}[daemon]\n{line}\n"
    elif table == "slack":
        text = f'{GOOD}\n[[sources]]\nname = "chat"\ntype = "slack"\ntoken_env = "T"\n{line}\n'
    else:
        text = graph_source(tmp_path, table, more=f"{line}\n").read_text()
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert f"{where}: " in str(caught.value) and "shorter than '1s'" in str(caught.value), str(caught.value)
    assert load_config(write(tmp_path, text.replace(line, line.replace("0.5s", "1s").replace('"0', '"1'))))


def test_durations_where_zero_means_something_stay_accepted(tmp_path: Path) -> None:
    text = GOOD.replace('every = "1h"', 'every = "1s"\nrecent_first = "0"') + '[daemon]\njitter = "0s"\n'
    settings = load_config(write(tmp_path, text))
    assert settings.daemon.jitter == "0s" and settings.source("handbook").every == "1s"
    assert settings.recent_window("handbook") == 0


# --- round 27 probe: URL keys, [index] path and model, and messages that say what is wrong --------
_URL_SOURCES = {
    "slack": 'token_env = "T"\n',
    "slack_export": 'path = "export.zip"\n',
    "google_drive": 'credentials_file = "sa.json"\n',
    "gmail": 'credentials_file = "sa.json"\nmailboxes = ["a@example.com"]\n',
}


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("slack", "base_url"),
        ("slack_export", "team_url"),
        ("google_drive", "api_endpoint"),
        ("google_drive", "directory_endpoint"),
        ("google_drive", "push_url"),
        ("gmail", "api_endpoint"),
        ("outlook", "graph_url"),
        ("teams", "graph_url"),
        ("microsoft_files", "graph_url"),
        ("outlook", "notifications_url"),
    ],
)
@pytest.mark.parametrize("value", ["ftp://127.0.0.1/api/", "slack.com/api/", "not a url", "https://h:99999/"])
def test_a_malformed_service_url_is_a_config_error_naming_file_source_and_key(
    tmp_path: Path, kind: str, key: str, value: str
) -> None:
    """Each URL-valued key passes the check `authority_url` has (exit 2 before anything runs), not
    a library's error (SlackRequestError, RelativeURIError, KeyError 'ftp') at the first request."""
    if kind in _URL_SOURCES:
        config = write(tmp_path, f'[[sources]]\nname = "m"\ntype = "{kind}"\n{_URL_SOURCES[kind]}{key} = "{value}"\n')
    else:
        config = graph_source(tmp_path, kind, more=f'{key} = "{value}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(config)
    message = str(info.value)
    assert str(config) in message and f"source 'm': key '{key}'" in message, message
    assert "URL" in message


def test_a_service_url_shows_no_password_or_token_in_its_error_and_a_good_one_is_kept(tmp_path: Path) -> None:
    config = write(
        tmp_path, '[[sources]]\nname = "m"\ntype = "slack"\ntoken_env = "T"\nbase_url = "https://u:Pw9@h/api/?t=Tok9"\n'
    )
    with pytest.raises(ConfigError, match=r"key 'base_url': 'https://h/api/' must not have a query") as info:
        load_config(config)
    assert "Pw9" not in str(info.value) and "Tok9" not in str(info.value)
    config.write_text(
        '[[sources]]\nname = "m"\ntype = "slack"\ntoken_env = "T"\nbase_url = " http://127.0.0.1:9/api"\n'
    )
    assert load_config(config).source("m").base_url == "http://127.0.0.1:9/api/"


@pytest.mark.parametrize("under", [False, True])
def test_an_index_path_that_is_a_file_is_a_config_error_naming_the_key(tmp_path: Path, under: bool) -> None:
    from click.testing import CliRunner

    from inlet.cli import cli

    (tmp_path / "afile").write_text("x")
    index = "afile/idx" if under else "afile"
    config = write(tmp_path, GOOD.replace('path = "store"', f'path = "{index}"'))
    (tmp_path / "docs").mkdir()
    with pytest.raises(ConfigError, match=r"\[index\] key 'path': .*afile.* is a file"):
        load_config(config, check_paths=True)
    result = CliRunner().invoke(cli, ["status", "--config", str(config)])
    assert result.exit_code == 2 and "[index] key 'path'" in result.output, result.output
    assert "Traceback" not in result.output


def test_an_index_folder_that_cannot_be_created_is_a_storage_error_naming_the_key(tmp_path: Path) -> None:
    """A folder the process may not create (permission denied, here a name too long) names `[index]
    path` and the reason, not a traceback from the catalog (a file in the way: a ConfigError)."""
    from inlet.config import IndexConfig
    from inlet.errors import StorageError
    from inlet.storage.backend import open_backend

    too_long = IndexConfig(path=tmp_path / ("x" * 300) / "ix")
    with pytest.raises(StorageError, match=r"\[index\] path: cannot create the folder .*xxx.*: File name too long"):
        open_backend(too_long).catalog()
    with pytest.raises(StorageError, match=r"\[index\] path"):
        open_backend(too_long).state()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"\[index\] path: .*afile is a file, not a folder"):
        open_backend(IndexConfig(path=tmp_path / "afile")).catalog()


def test_an_empty_path_is_no_path_not_the_configuration_folder(tmp_path: Path) -> None:
    """Probe 31e F9: `path = ""` (a template's unset variable) is refused naming the key, for the
    index and a source alike, once each; `"."` is the configuration's folder, said on purpose."""
    config = tmp_path / "config.toml"
    config.write_text('[index]\npath = ""\n[[sources]]\nname = "docs"\ntype = "files"\npath = " "\n')
    with pytest.raises(ConfigError) as refused:
        load_config(config, check_paths=True)
    problems = str(refused.value)
    assert "[index] key 'path': is empty" in problems and "source 'docs': key 'path': is empty" in problems
    assert "does not exist" not in problems  # said once, as empty
    config.write_text('[index]\npath = "."\n')
    assert load_config(config, check_paths=True).index.path == tmp_path


def test_a_config_path_that_is_a_folder_is_not_called_missing(tmp_path: Path, monkeypatch) -> None:
    from inlet.config import find_config

    (tmp_path / "config.toml").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INLET_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="config.toml is a folder, not a file"):
        find_config(None)
    monkeypatch.setenv("INLET_CONFIG", str(tmp_path / "config.toml"))
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        find_config(None)
    with pytest.raises(ConfigError, match="not found"):
        find_config(tmp_path / "nothing.toml")


def test_a_secret_variable_set_to_the_empty_string_is_said_to_be_empty_not_unset(tmp_path: Path) -> None:
    from inlet.config import check_index_secret, preflight

    (tmp_path / "docs").mkdir()
    text = GOOD + '\n[[sources]]\nname = "chat"\ntype = "slack"\ntoken_env = "INLET_TEST_EMPTY_TOKEN"\n'
    settings = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"'INLET_TEST_EMPTY_TOKEN' \(named by key 'token_env'\) is set but empty"):
        preflight(settings, ["chat"], {"INLET_TEST_EMPTY_TOKEN": ""})
    with pytest.raises(ConfigError, match="is set but empty"):
        settings.connector("chat", {"INLET_TEST_EMPTY_TOKEN": ""}).secret("token_env")
    with pytest.raises(ConfigError, match=r"'INLET_TEST_EMPTY_TOKEN' \(named by key 'token_env'\) is not set"):
        preflight(settings, ["chat"], {})
    pg = write(
        tmp_path,
        '[index]\ndatabase_url = "postgresql://inlet@127.0.0.1:1/inlet"\n'
        'database_password_env = "INLET_TEST_EMPTY_PW"\nchroma_url = "http://127.0.0.1:1"\n',
    )
    with pytest.raises(ConfigError, match="'INLET_TEST_EMPTY_PW' .* is set but empty"):
        check_index_secret(load_config(pg), {"INLET_TEST_EMPTY_PW": ""})


@pytest.mark.parametrize(
    "key, table",
    [
        ('every = "3000000d"', "source"),
        ('every = "99999999999999999999d"', "source"),
        ('recent_first = "99999999999d"', "source"),
        ('prune_every = "876001h"', "source"),
        ('recent_first = "99999999999d"', "index"),
    ],
)
def test_a_duration_longer_than_a_hundred_years_is_a_config_error_naming_the_key(
    tmp_path: Path, key: str, table: str
) -> None:
    """probe35b F4: `every = "3000000d"` passed, then `inlet daemon` died with an OverflowError
    traceback (a date past year 9999); `recent_first = "99999999999d"` failed the backfill naming
    no key. Refused when the config is read: exit 2, naming the key, the source and the file."""
    (tmp_path / "docs").mkdir()
    source = '[[sources]]\nname = "kb"\ntype = "files"\npath = "docs"\n'
    text = f"{source}{key}\n" if table == "source" else f"[index]\n{key}\n\n{source}"
    config = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    name, value = key.split(" = ")
    assert str(config) in message and f"key '{name}': '{value.strip(chr(34))}' is longer than '36500d'" in message
    assert ("source 'kb'" in message) is (table == "source"), message
    shown = CliRunner().invoke(cli, ["status", "--config", str(config)])
    assert (
        shown.exit_code == 2 and "longer than '36500d' (100 years)" in shown.output and "Traceback" not in shown.output
    )
    every = write(tmp_path, f'{source}every = "36500d"\n')  # the longest is taken
    assert load_config(every).source("kb").every == "36500d"


@pytest.mark.parametrize(
    "section, key",
    [("[index]", "path"), ("[index]", "abs"), ("[server]", "audit_log"), ("[server.oauth]", "ca_bundle")],
)
def test_a_configured_path_that_is_a_loop_of_symbolic_links_is_a_config_error_naming_the_key(
    tmp_path: Path, section: str, key: str
) -> None:
    """probe35b F5: `[index] path` or `[server] audit_log` naming `lp1` (lp1 -> lp2 -> lp1) ended
    every command in a `RuntimeError: Symlink loop` traceback, exit 1. One line naming the key and
    the path, exit 2."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "lp1").symlink_to(tmp_path / "lp2")
    (tmp_path / "lp2").symlink_to(tmp_path / "lp1")
    value = str(tmp_path / "lp1") if key == "abs" else "lp1"
    oauth = '[server.oauth]\nissuer = "https://id.example.com/"\naudience = "inlet"\n'
    head = {
        "[index]": f'[index]\npath = "{value}"\n',
        "[server]": f'[server]\naudit_log = "{value}"\n',
        "[server.oauth]": f'{oauth}ca_bundle = "{value}"\n',
    }[section]
    config = write(tmp_path, f'{head}\n[[sources]]\nname = "kb"\ntype = "files"\npath = "docs"\n')
    shown = CliRunner().invoke(cli, ["status", "--config", str(config)])
    name = "path" if key == "abs" else key
    expected = f"{section} key '{name}': {tmp_path / 'lp1'} is a loop of symbolic links"
    assert shown.exit_code == 2 and expected in shown.output, shown.output
    assert "Traceback" not in shown.output and "does not exist" not in shown.output
