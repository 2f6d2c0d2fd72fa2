"""`inlet demo`: the README's first command, end to end (sandbox, four connectors, engine, search).

The one test here loads the embedding model and backfills real sandbox data: the slowest test of
the suite by design, kept to the smallest sample mailbox (100 mails) so it stays within a minute.
"""

from __future__ import annotations

import io
import json
import socket

import pytest

from inlet.demo import (
    AS_PEOPLE,
    DEMO_HOST,
    DEMO_KEY_ENV,
    DEMO_PORT,
    SAMPLE_QUERIES,
    _print_answers,
    demo_config,
    demo_socket,
    run_demo,
)
from inlet.index.relevance import default_min_relevance
from inlet.errors import PortInUseError

SANDBOX_TOML = """[index]
path = "/tmp/somewhere"

[[sources]]
name = "sandbox-mail"
type = "outlook"
mailboxes = ["a@enron.com", "b@enron.com", "c@enron.com"]

[[sources]]
name = "sandbox-gmail"
type = "gmail"
mailboxes = ["a@enron.com", "b@enron.com", "c@enron.com"]
"""


def test_demo_config_limits_mailboxes_and_adds_a_key(tmp_path) -> None:
    text = demo_config(SANDBOX_TOML, tmp_path / "index", 0, mailboxes=("c@enron.com", "a@enron.com"))
    assert text.count('mailboxes = ["a@enron.com", "c@enron.com"]') == 2  # Outlook and Gmail alike
    assert 'mailboxes = ["a@enron.com"]' in demo_config(SANDBOX_TOML, tmp_path, 0, mailboxes=("x@y.z",))
    assert f'path = "{(tmp_path / "index").as_posix()}"' in text and "/tmp/somewhere" not in text
    import tomllib

    raw = tomllib.loads(text)
    assert raw["server"]["api_keys"] == [{"name": "demo", "key_env": DEMO_KEY_ENV, "admin": True}]
    assert demo_config(SANDBOX_TOML, tmp_path, 0, mailboxes=None).count("@enron.com") == 6


def test_without_port_the_demo_serves_beside_whatever_holds_8484() -> None:
    """8484 taken (here, or by another process already) is no error for a demo nobody gave a port."""
    try:
        held: socket.socket | None = socket.create_server((DEMO_HOST, DEMO_PORT))
    except OSError:
        held = None  # another process holds it: busy all the same
    try:
        with demo_socket(None) as sock:
            assert sock.getsockname()[1] not in (DEMO_PORT, 0)
        with pytest.raises(PortInUseError, match=f"{DEMO_HOST}:{DEMO_PORT}"):
            demo_socket(DEMO_PORT)  # asked for by name: taken at its word
    finally:
        if held is not None:
            held.close()


def test_demo_once_with_a_port_is_a_usage_error() -> None:
    from click.testing import CliRunner

    from inlet.cli import cli

    result = CliRunner().invoke(cli, ["demo", "--once", "--port", "8080"])
    assert result.exit_code == 2 and "--once serves nothing" in result.output


def test_demo_once_backfills_the_sandbox_and_answers_with_citations() -> None:
    out = io.StringIO()
    assert run_demo(once=True, as_json=True, mailboxes=("robert.badeer@enron.com",), out=out) == 0
    report = json.loads(out.getvalue())
    runs = {r["source"]: r for r in report["runs"]}
    assert set(runs) == {
        "sandbox-slack",
        "sandbox-drive",
        "sandbox-mail",
        "sandbox-files",
        "sandbox-teams",
        "sandbox-gmail",
    }
    for run in runs.values():
        assert run["outcome"] in ("ok", "partial") and run["upserted"] > 0, run
    answers = {a["query"]: a["results"] for a in report["answers"] if "user" not in a}
    assert list(answers) == list(SAMPLE_QUERIES)
    expected_type = dict(
        zip(SAMPLE_QUERIES, (("google_drive",), ("slack",), ("outlook", "gmail"), ("microsoft_files",), ("teams",)))
    )
    for query, results in answers.items():
        assert results, query
        assert results[0]["source_type"] in expected_type[query], (query, results[0])  # the same mails in both
        assert all(r["url"] and r["title"] and r["text"] for r in results)  # citable
    assert "outage" in answers[SAMPLE_QUERIES[0]][0]["text"].lower()
    assert "deploy" in answers[SAMPLE_QUERIES[1]][0]["text"].lower()
    # The same question as two people: the postmortem is shared with the first, not the second.
    as_people = {a["user"]: a["results"] for a in report["answers"] if "user" in a}
    assert list(as_people) == list(AS_PEOPLE)
    postmortem = answers[SAMPLE_QUERIES[0]][0]["doc_id"]
    assert as_people[AS_PEOPLE[0]][0]["doc_id"] == postmortem
    assert postmortem not in {r["doc_id"] for r in as_people[AS_PEOPLE[1]]}
    for results in answers.values():  # one result per document
        assert len({r["doc_id"] for r in results}) == len(results)


def test_the_demo_prints_what_an_agent_would_get_with_each_relevance() -> None:
    floor = default_min_relevance()
    hit = {"title": "Postmortem", "doc_id": "d:1", "source_type": "google_drive", "source": "drive", "url": "u"}
    answers = [
        {
            "query": "q1",
            "match": "weak",
            "results": [
                {**hit, "text": "the answer", "relevance": floor + 0.1},
                {**hit, "text": "a near miss", "relevance": floor / 2},
            ],
        },
        {
            "query": "q2",
            "user": "bob@example.com",
            "match": "none",
            "results": [{**hit, "text": "x", "relevance": 0.0}],
        },
        {  # judged "none" as a whole: not shown, whatever its relevance
            "query": "q3",
            "match": "none",
            "results": [{**hit, "text": "a look-alike", "relevance": floor + 0.1}],
        },
    ]
    out = io.StringIO()
    _print_answers(out, False, [], answers)
    text = out.getvalue()
    assert f"relevance {floor + 0.1:.2f}" in text and "the answer" in text and "a near miss" not in text
    assert f"(1 more below relevance {floor:.2f}, left out as /v1/context and MCP do)" in text
    assert "? q2 (asked as bob@example.com) — match: none\n  nothing visible to this person answers it" in text
    assert "a look-alike" not in text
    assert "? q3 — match: none\n  nothing visible to this person answers it\n  (1 result judged not to answer" in text
