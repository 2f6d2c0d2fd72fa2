"""The retrieval API over HTTP (TestClient): routes, key kinds, ACL, filters, errors, operations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from inlet.config import parse_config
from inlet.index.store import Index
from inlet.server.auth import named_user
from inlet.server.app import create_app
from inlet.server.errors import ApiError
from inlet.server.models import MIN_RELEVANCE

from .conftest import AGENT, ALICE, BOB, KEYS, NOW, OPS, client_for, settings_for


def ids(response: object) -> list[str]:
    return [r["doc_id"] for r in response.json()["results"]]  # type: ignore[attr-defined]


def search(client: TestClient, headers: dict[str, str], **body: object) -> list[str]:
    response = client.post("/v1/search", json={"query": "Falcon launch date", **body}, headers=headers)
    assert response.status_code == 200, response.text
    return ids(response)


RESULT_FIELDS = {
    "chunk_id",
    "doc_id",
    "source",
    "source_type",
    "title",
    "text",
    "passages",
    "url",
    "author",
    "created_at",
    "updated_at",
    "score",
    "relevance",
    "metadata",
}  # a search result, as the API returns it and as its OpenAPI schema says


# --- keys and rights --------------------------------------------------------------------------
@pytest.mark.parametrize("path,status", [("/healthz", "ok"), ("/readyz", "ready")])
def test_probes_need_no_key(client: TestClient, path: str, status: str) -> None:
    response = client.get(path)  # Kubernetes-style probes send no credentials
    assert response.status_code == 200 and response.json() == {"status": status}


@pytest.mark.parametrize(
    "path", ["/metrics", "/v1/sources", "/v1/documents/eng:C1/100", "/openapi.json", "/no/such/route"]
)
def test_every_other_route_needs_a_key(client: TestClient, path: str) -> None:
    missing = client.get(path)
    wrong = client.get(path, headers={"Authorization": "Bearer not-a-key"})
    basic = client.get(path, headers={"Authorization": "Basic YWxpY2U6eA=="})
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_key_on_post_is_401_even_with_a_bad_body(client: TestClient) -> None:
    response = client.post(
        "/v1/search", content=b"{not json", headers={"Authorization": "Bearer nope", "Content-Type": "application/json"}
    )
    assert response.status_code == 401


def test_user_key_searches_as_its_user(client: TestClient) -> None:
    assert "eng:C2/200" in search(client, ALICE)
    assert "eng:C2/200" not in search(client, BOB)


def test_user_key_naming_a_user_is_403(client: TestClient) -> None:
    for user in ("bob@other.org", "alice@example.com"):
        response = client.post("/v1/search", json={"query": "x", "user": user}, headers=ALICE)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        assert "acts as alice@example.com only: leave 'user' out" in response.json()["error"]["message"]
    response = client.get("/v1/documents/eng:C1/100", headers={**ALICE, "X-Inlet-User": "bob@other.org"})
    assert response.status_code == 403


def test_on_behalf_of_key_must_name_the_user(client: TestClient) -> None:
    response = client.post("/v1/search", json={"query": "Falcon"}, headers=AGENT)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "user_required"
    assert "eng:C2/200" in search(client, AGENT, user="alice@example.com")
    assert "eng:C2/200" not in search(client, AGENT, user="bob@other.org")
    assert client.get("/v1/documents/eng:C1/100", headers=AGENT).status_code == 400


def test_on_behalf_of_names_the_user_of_a_post_by_header_too_and_two_users_are_400(client: TestClient) -> None:
    """A gateway stamps X-Inlet-User on every request: a POST takes it, and a body naming another
    user is refused rather than silently chosen over it."""
    stamped = {**AGENT, "X-Inlet-User": "alice@example.com"}
    found = client.post("/v1/search", json={"query": "Falcon"}, headers=stamped)
    assert found.status_code == 200 and "eng:C2/200" in [r["doc_id"] for r in found.json()["results"]]
    same = client.post("/v1/context", json={"query": "Falcon", "user": "Alice@example.com"}, headers=stamped)
    assert same.status_code == 200
    other = client.post("/v1/search", json={"query": "Falcon", "user": "bob@other.org"}, headers=stamped)
    assert other.status_code == 400 and "name different users" in other.json()["error"]["message"]


def test_on_behalf_of_names_the_user_on_get_by_header_or_query(client: TestClient) -> None:
    path = "/v1/documents/eng:C2/200"
    assert client.get(path, headers={**AGENT, "X-Inlet-User": "alice@example.com"}).status_code == 200
    assert client.get(path + "?user=alice@example.com", headers=AGENT).status_code == 200
    assert client.get(path, headers={**AGENT, "X-Inlet-User": "bob@other.org"}).status_code == 404
    assert client.get(path + "?user=bob@other.org", headers=AGENT).status_code == 404


MALFORMED_USERS = [
    "eve@evil.com@example.com",
    "eve@evil.com, bob@example.com",  # what a proxy merging two X-Inlet-User headers forwards
    "eve@evil.com bob@example.com",
    "@example.com",
    "Eve <eve@example.com>",
    "eve@",
    "eve@example.com\u3000",  # white space no address holds is no padding to strip (probe33h #5)
    "\x1feve@example.com",
    "eve@example.com\u2028",
]


@pytest.mark.parametrize("user", MALFORMED_USERS)
@pytest.mark.parametrize("key", [AGENT, OPS], ids=["on_behalf_of", "admin"])
def test_a_named_user_must_be_one_well_formed_address(client: TestClient, key: dict[str, str], user: str) -> None:
    """ACL domains are matched on what follows the '@': a malformed name must not get example.com's
    documents (drive:f1), whichever way it is named (the OAuth path's rule, `well_formed_user`)."""
    answers = [
        client.post("/v1/search", json={"query": "Falcon budget", "user": user}, headers=key),
        client.post("/v1/context", json={"query": "Falcon budget"}, headers={**key, "X-Inlet-User": user.encode()}),
        client.get("/v1/documents/drive:f1", headers={**key, "X-Inlet-User": user.encode()}),
        client.get("/v1/documents/drive:f1", params={"user": user}, headers=key),
    ]
    for answer in answers:
        assert answer.status_code == 400, (user, answer.text)
        assert answer.json()["error"]["code"] == "invalid_request"
        assert "not one well-formed email address" in answer.json()["error"]["message"]
    assert client.get("/v1/documents/drive:f1", headers={**key, "X-Inlet-User": "eve@example.com"}).status_code == 200
    assert client.get("/v1/documents/drive:f1", headers={**key, "X-Inlet-User": "Eve@Example.COM"}).status_code == 200


@pytest.mark.parametrize(
    "user", ["eve+inlet@example.com", "Eve.B@Example.COM", "josé@example.com", "eve@localhost", "eve"]
)
def test_every_address_naming_one_user_is_accepted(client: TestClient, user: str) -> None:
    """Not stricter than one address: sub-addressing, case, internationalised addresses, a
    single-label host, and a name without a domain (an ACL's `u:` entries) are each one user."""
    answer = client.post("/v1/search", json={"query": "Falcon budget", "user": user}, headers=AGENT)
    assert answer.status_code == 200, (user, answer.text)


def test_a_user_stamped_in_the_header_is_read_as_utf8(client: TestClient) -> None:
    """probe33h #4: the header was read as Latin-1, so a gateway stamping `jürgen@example.de` named
    `jÃ¼rgen@example.de`, and a body naming the same user was refused as another."""
    stamped = {**AGENT, "X-Inlet-User": "jürgen@example.de".encode()}
    same = client.post("/v1/search", json={"query": "Falcon", "user": "Jürgen@example.de"}, headers=stamped)
    assert same.status_code == 200, same.text
    with pytest.raises(ApiError, match="not UTF-8"):  # Latin-1 bytes (the test client cannot send them)
        named_user({"headers": [(b"x-inlet-user", b"j\xfcrgen@example.de")]})


@pytest.mark.parametrize(
    "query,headers",
    [
        ("", [("X-Inlet-User", "bob@other.org"), ("X-Inlet-User", "alice@example.com")]),
        ("?user=bob@other.org&user=alice@example.com", []),
    ],
)
def test_naming_two_users_is_refused(client: TestClient, query: str, headers: list[tuple[str, str]]) -> None:
    """A gateway that appends the signed-in user to a value the client sent must not let the
    client choose: the header or the parameter repeated with two users is a 400."""
    answer = client.get(f"/v1/documents/eng:C2/200{query}", headers=[*AGENT.items(), *headers])
    assert answer.status_code == 400 and "more than one user" in answer.json()["error"]["message"]
    header_wins = client.get(
        "/v1/documents/eng:C2/200?user=alice@example.com", headers={**AGENT, "X-Inlet-User": "bob@other.org"}
    )
    assert header_wins.status_code == 404  # as bob, on every route (a gateway sets the header)
    same = client.get(
        "/v1/documents/eng:C2/200?user=alice@example.com", headers={**AGENT, "X-Inlet-User": "alice@example.com"}
    )
    assert same.status_code == 200


def test_admin_key_sees_everything_and_may_act_as_a_user(client: TestClient) -> None:
    everything = search(client, OPS, query="Falcon launch salary bands")
    assert {"eng:C2/200", "mail:hr-1", "drive:f1"} <= set(everything)
    as_bob = search(client, OPS, query="Falcon launch salary bands", user="bob@other.org")
    assert "mail:hr-1" not in as_bob and "eng:C2/200" not in as_bob


# --- ACL everywhere ----------------------------------------------------------------------------
def test_private_channel_member_sees_it_non_member_never(client: TestClient) -> None:
    path = "/v1/documents/eng:C2/200"
    assert client.get(path, headers=ALICE).json()["text"].startswith("Project Falcon")
    hidden = client.get(path, headers=BOB)
    absent = client.get("/v1/documents/eng:C2/999", headers=BOB)
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["error"]["code"] == absent.json()["error"]["code"] == "not_found"
    ctx = client.post("/v1/context", json={"query": "Falcon launch date partner"}, headers=BOB).json()
    assert "Initech" not in ctx["context"]
    assert all(c["doc_id"] != "eng:C2/200" for c in ctx["citations"])
    ctx = client.post("/v1/context", json={"query": "Falcon launch date partner"}, headers=ALICE).json()
    assert "Initech" in ctx["context"]


def test_domain_acl(client: TestClient) -> None:
    assert "drive:f1" in search(client, AGENT, user="carol@example.com", query="Falcon budget")
    assert "drive:f1" not in search(client, BOB, query="Falcon budget")


def test_a_document_id_holding_a_newline_reaches_the_route(client: TestClient) -> None:
    # a file's name may hold one; the route answers for the id, not "no such route"
    answer = client.get("/v1/documents/files:notes%0Ano-link.md", headers=OPS)
    assert answer.status_code == 404 and answer.json()["error"]["message"] == "no document 'files:notes\\nno-link.md'"


def test_admin_only_document(client: TestClient) -> None:
    assert client.get("/v1/documents/mail:hr-1", headers=ALICE).status_code == 404
    assert "mail:hr-1" not in search(client, ALICE, query="salary bands")
    assert client.get("/v1/documents/mail:hr-1", headers=OPS).status_code == 200


def test_k_results_come_back_when_k_visible_ones_exist(client: TestClient) -> None:
    # Bob may see 4 of the 7 documents (m1/m2 collapse into one): the ACL is applied inside the
    # query, so asking for 3 gives 3 even though the best-scoring ones are hidden from him.
    assert len(search(client, BOB, query="Falcon launch budget salary", k=3)) == 3


def test_acl_shown_only_to_admins(client: TestClient) -> None:
    admin = client.get("/v1/documents/eng:C2/200", headers=OPS).json()
    assert admin["acl"] == {"public": False, "users": ["alice@example.com"], "domains": []}
    user = client.get("/v1/documents/eng:C2/200", headers=ALICE).json()
    assert "acl" not in user
    assert set(user) == {
        "id",
        "source",
        "source_type",
        "title",
        "text",
        "url",
        "author",
        "created_at",
        "updated_at",
        "metadata",
    }


# --- search shapes and quality ---------------------------------------------------------------
def test_search_result_shape(client: TestClient) -> None:
    body = client.post("/v1/search", json={"query": "deploy the billing service", "k": 2}, headers=ALICE).json()
    assert set(body) == {"results", "match", "interpreted", "took_ms"}
    assert body["match"] in ("strong", "weak", "none") and body["interpreted"] == {}
    first = body["results"][0]
    assert set(first) == RESULT_FIELDS
    assert 0.0 <= first["relevance"] <= 1.0 and isinstance(first["passages"], list)
    assert first["doc_id"] == "eng:C1/100" and first["metadata"] == {"channel": "general"}
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_the_latest_slack_message_is_the_newest_the_caller_may_see(client: TestClient) -> None:
    for headers, newest in ((BOB, "eng:C1/100"), (ALICE, "eng:C2/200")):  # C2 is newer, and Alice's alone
        body = client.post("/v1/search", json={"query": "what's the latest Slack message"}, headers=headers).json()
        assert body["interpreted"] == {"source_types": ["slack"], "sort": "newest"}
        assert body["results"][0]["doc_id"] == newest and body["match"] == "strong"
        assert {r["doc_id"] for r in body["results"]} <= {"eng:C1/100", "eng:C2/200"}


def test_near_duplicates_collapse(client: TestClient) -> None:
    found = search(client, ALICE, query="quarterly pipeline review Houston storage forecasts")
    assert len({"mail:m1", "mail:m2"} & set(found)) == 1


def test_filters(client: TestClient) -> None:
    assert set(search(client, OPS, sources=["mail"])) <= {"mail:m1", "mail:m2", "mail:hr-1"}
    assert set(search(client, OPS, source_types=["slack"])) == {"eng:C1/100", "eng:C2/200"}
    after = (NOW - timedelta(days=5)).isoformat()
    assert set(search(client, OPS, after=after)) == {"eng:C1/100", "eng:C2/200", "files:notes/no-link.md"}
    before = (NOW - timedelta(days=100)).isoformat().replace("+00:00", "Z")
    assert search(client, OPS, before=before) == ["drive:f1"]


UNKNOWN = (
    (
        {"source_types": ["drive", "Slack"]},
        "unknown source_types 'drive'; valid: 'files', 'google_drive', 'outlook', 'slack'",
    ),
    ({"sources": ["eng", "nope"]}, "unknown sources 'nope'; valid: 'drive', 'eng', 'files', 'mail'"),
)


@pytest.mark.parametrize("route", ["/v1/search", "/v1/context"])
@pytest.mark.parametrize("body,message", UNKNOWN)
def test_an_unknown_source_or_type_is_422_naming_the_valid_ones(
    client: TestClient, route: str, body: dict[str, list[str]], message: str
) -> None:
    """A typo in a filter is not "nothing here answers" (match none): the caller is told what to send."""
    response = client.post(route, json={"query": "Falcon launch date", **body}, headers=OPS)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == {"code": "invalid_request", "message": message}


def test_source_types_are_read_in_any_case(client: TestClient) -> None:
    assert set(search(client, OPS, source_types=["Slack"])) == {"eng:C1/100", "eng:C2/200"}


def test_a_user_is_told_only_of_the_sources_holding_documents_they_may_see(client: TestClient) -> None:
    """Bob sees nothing of `drive` (its one document is for example.com): to him it is as unknown as a
    name no source has, and the valid ones he is told are those he may see documents of."""
    assert search(client, ALICE, sources=["drive"]) == ["drive:f1"]
    answers = {}
    for name in ("drive", "no-such-source"):
        response = client.post("/v1/search", json={"query": "Falcon", "sources": [name]}, headers=BOB)
        assert response.status_code == 422
        answers[name] = response.json()["error"]["message"].replace(repr(name), "NAME")
    assert (
        answers["drive"]
        == answers["no-such-source"]
        == ("unknown sources NAME; the sources holding documents you may see: 'eng', 'files', 'mail'")
    )


def test_a_configured_source_is_valid_before_it_holds_a_document(index: Index, tmp_path: Path) -> None:
    from inlet.connectors.files import FilesConfig

    source = FilesConfig(name="handbook", type="mail_archive", path=tmp_path)
    settings = settings_for(index.path).model_copy(update={"sources": [source]})
    for client in client_for(settings, index):
        for body in ({"sources": ["handbook"]}, {"source_types": ["mail_archive"]}):
            response = client.post("/v1/search", json={"query": "Falcon", **body}, headers=OPS)
            assert response.status_code == 200 and response.json()["results"] == [], response.text


def test_recency_can_be_turned_off(settings: object, index: Index) -> None:
    # Two equally relevant passages (same text) a year apart: with recency on, the recent one wins.
    from inlet.index.search import SearchRequest, search as run

    base = dict(query="espresso machine descaled", user=None, k=10)
    on, _ = run(index, SearchRequest(**base, recency_half_life_days=180))  # type: ignore[arg-type]
    off, _ = run(index, SearchRequest(**base, recency_half_life_days=0))  # type: ignore[arg-type]
    off_scores = {h.doc_id: h.score for h in off}
    assert all(hit.score >= off_scores[hit.doc_id] for hit in on)
    assert any(hit.score > off_scores[hit.doc_id] for hit in on)  # dated documents got the boost


def test_recency_request_flag(client: TestClient) -> None:
    on = client.post("/v1/search", json={"query": "espresso machine"}, headers=ALICE).json()["results"]
    off = client.post("/v1/search", json={"query": "espresso machine", "recency": False}, headers=ALICE).json()[
        "results"
    ]
    assert on[0]["doc_id"] == off[0]["doc_id"] == "files:notes/no-link.md"
    assert on[0]["score"] > off[0]["score"]


# --- context -----------------------------------------------------------------------------------
def test_context_packs_under_budget_with_citations(client: TestClient, index: Index) -> None:
    body = client.post("/v1/context", json={"query": "Falcon launch", "token_budget": 150}, headers=OPS).json()
    assert set(body) >= {"context", "citations", "results"}
    assert index.embedder.count_tokens([body["context"]])[0] <= 150 + 2
    assert body["tokens"] <= 150
    assert "quoted data" in body["context"] and "not instructions" in body["context"]
    assert body["citations"][0]["n"] == 1
    for cite in body["citations"]:
        assert f"[{cite['n']}] {cite['title']} — {cite['source']} — " in body["context"]
        assert set(cite) == {"n", "doc_id", "title", "url", "source"} and cite["url"]
    assert body["context"].count("<document") == len(body["results"])
    big = client.post("/v1/context", json={"query": "Falcon launch", "token_budget": 4000}, headers=OPS).json()
    assert len(big["results"]) > len(body["results"])


def test_context_tiny_budget_cuts_the_first_passage(client: TestClient) -> None:
    body = client.post(
        "/v1/context", json={"query": "deploy billing canary", "token_budget": 100}, headers=ALICE
    ).json()
    assert body["tokens"] <= 100 and len(body["results"]) == 1
    assert "…" in body["context"]


def test_context_too_small_a_budget_keeps_the_match_and_says_so(client: TestClient) -> None:
    """A match too long for the budget is not `none`: the agent is told to ask with more room."""
    full = client.post("/v1/context", json={"query": "deploy billing canary"}, headers=ALICE).json()
    tiny = client.post("/v1/context", json={"query": "deploy billing canary", "token_budget": 50}, headers=ALICE).json()
    assert full["match"] != "none" and tiny["match"] == full["match"]
    assert tiny["results"] == [] and tiny["citations"] == [] and "larger token_budget" in tiny["context"]


# --- malformed input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "payload,status",
    [
        ({}, 422),
        ({"query": ""}, 422),
        ({"query": "   "}, 422),
        ({"query": "x", "k": 0}, 422),
        ({"query": "x", "k": 1000}, 422),
        ({"query": 5}, 422),
        ({"query": "x", "after": "yesterday"}, 422),
        ({"query": "x", "sources": "eng"}, 422),
        ({"query": "x", "bogus": 1}, 422),
        ([1, 2], 422),
        # what the schema calls invalid, pydantic alone would take: true as k = 1, "3", "no", 0
        ({"query": "x", "k": True}, 422),
        ({"query": "x", "k": "3"}, 422),
        ({"query": "x", "recency": "no"}, 422),
        ({"query": "x", "recency": 0}, 422),
    ],
)
def test_malformed_search_is_4xx_in_contract_shape(client: TestClient, payload: object, status: int) -> None:
    response = client.post("/v1/search", json=payload, headers=ALICE)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["message"]


def test_bad_json_is_400(client: TestClient) -> None:
    response = client.post("/v1/search", content=b'{"query": ', headers={**ALICE, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    latin1 = client.post(
        "/v1/search", content=b'{"query": "caf\xe9"}', headers={**ALICE, "Content-Type": "application/json"}
    )
    assert latin1.status_code == 400 and latin1.json()["error"]["code"] == "invalid_json"  # not UTF-8


def test_context_budget_validation(client: TestClient) -> None:
    response = client.post("/v1/context", json={"query": "x", "token_budget": -1}, headers=ALICE)
    assert response.status_code == 422


@pytest.mark.parametrize(
    "body,message",
    [
        ({"min_relevance": "0.5"}, 'min_relevance: must be a number, not "0.5"'),
        ({"min_relevance": True}, "min_relevance: must be a number, not true"),
        ({"token_budget": "300"}, 'token_budget: must be an integer, not "300"'),
        ({"k": True}, "k: must be an integer, not true"),
    ],
)
def test_context_numbers_and_booleans_are_json_ones(client: TestClient, body: dict[str, object], message: str) -> None:
    response = client.post("/v1/context", json={"query": "deploy", **body}, headers=ALICE)
    assert response.status_code == 422 and response.json()["error"]["message"] == message


def test_an_integral_number_is_an_integer_as_in_json_schema(client: TestClient) -> None:
    assert len(search(client, ALICE, query="deploy the billing service", k=2.0)) == 2
    response = client.post(
        "/v1/context", json={"query": "deploy", "token_budget": 300.0, "min_relevance": 0}, headers=ALICE
    )
    assert response.status_code == 200, response.text


def test_body_over_limit_is_413(client: TestClient) -> None:
    huge = {"query": "x" * 3000, "sources": ["s" * 100] * 1000}
    response = client.post("/v1/search", json=huge, headers=ALICE)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"query": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    response = client.post("/v1/search", content=chunks(), headers={**ALICE, "Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_keyless_body_over_limit_is_401_not_413(client: TestClient) -> None:
    huge = {"query": "x" * 70_000}  # declares a Content-Length over max_body_bytes
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        response = client.post("/v1/search", json=huge, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert client.post("/v1/search", json=huge, headers=ALICE).status_code == 413


@pytest.mark.parametrize(
    "path,headers",
    [
        ("/healthz", {}),
        ("/readyz", {}),
        ("/docs", {}),
        ("/console", {}),
        ("/v1/sources", OPS),
        ("/openapi.json", ALICE),
    ],
)
def test_head_is_answered_as_get_without_a_body(client: TestClient, path: str, headers: dict[str, str]) -> None:
    """RFC 9110: a server takes HEAD wherever it takes GET (health checkers and load balancers probe with it)."""
    got, head = client.get(path, headers=headers), client.head(path, headers=headers)
    assert got.status_code == head.status_code == 200, head.text
    assert head.content == b"" and head.headers["content-length"] == got.headers["content-length"]
    assert head.headers["content-type"] == got.headers["content-type"]


def test_head_needs_the_key_get_needs(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        response = client.head("/v1/sources", headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert response.content == b""
    assert client.head("/v1/sources", headers=ALICE).status_code == 403  # an admin route, as for GET
    assert client.head("/v1/search", headers=ALICE).status_code == 405  # a POST route


def test_head_over_a_real_connection_leaves_it_usable(settings: object, index: Index) -> None:
    import httpx

    from .conftest import serve

    for address in serve(create_app(settings, index=index, env=KEYS), lifespan="on"):  # type: ignore[arg-type]
        with httpx.Client(base_url=f"http://{address}") as http:
            head = http.head("/healthz")
            assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
            assert http.get("/healthz").json() == {"status": "ok"}  # the same connection, kept alive


def test_unknown_route_and_method(client: TestClient) -> None:
    assert client.get("/v1/nothing", headers=ALICE).json()["error"]["code"] == "not_found"
    response = client.get("/v1/search", headers=ALICE)
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


# --- operations ------------------------------------------------------------------------------------
def test_readyz_and_sources(client: TestClient) -> None:
    assert client.get("/readyz", headers=ALICE).json() == {"status": "ready"}
    sources = client.get("/v1/sources", headers=OPS).json()
    assert sources["sources"] == []  # the test's config names none; its index holds several, listed as such
    assert {s["name"]: s["remove"] for s in sources["unconfigured"]}["drive"] == "inlet forget drive"
    assert sources["upgrade"] == []  # the keys `inlet status --json` prints (probe33e F7); this process writes


@pytest.mark.parametrize("path", ["/v1/sources", "/metrics"])
@pytest.mark.parametrize("headers", [ALICE, AGENT], ids=["user-key", "on-behalf-key"])
def test_operations_data_is_for_admin_keys_only(client: TestClient, path: str, headers: dict[str, str]) -> None:
    response = client.get(path, headers=headers, params={"user": "alice@example.com"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert "admin key" in response.json()["error"]["message"]
    assert client.get(path, headers=OPS).status_code == 200


def test_readyz_is_503_until_loaded(settings: object) -> None:
    from inlet.server.app import create_app

    app = create_app(settings, index=None, env=KEYS)  # type: ignore[arg-type]
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: never loads
    response = client.get("/readyz", headers=ALICE)
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
    assert client.post("/v1/search", json={"query": "x"}, headers=ALICE).status_code == 503


def test_readyz_keeps_why_the_load_failed_for_the_log(settings: object) -> None:
    """probe34h F10: the keyless /readyz answered the load failure's text, folder paths included."""
    from inlet.server.app import create_app

    app = create_app(settings, index=None, env=KEYS)  # type: ignore[arg-type]
    app.state.retrieval.error = "index could not be loaded: Unrecognized model in /srv/secret-model-folder"
    response = TestClient(app, raise_server_exceptions=False).get("/readyz")
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
    assert "could not be loaded" in response.text and "/srv" not in response.text, response.text


def test_metrics(client: TestClient) -> None:
    client.post("/v1/search", json={"query": "deploy"}, headers=ALICE)
    text = client.get("/metrics", headers=OPS).text
    assert 'inlet_http_requests_total{method="POST",route="/v1/search",status="200"}' in text
    assert 'inlet_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/search"}' in text
    assert 'inlet_index_documents{source="mail"} 3.0' in text
    assert 'inlet_index_chunks{source="eng"} 2.0' in text


def test_metrics_of_a_plain_serve_carry_the_source_gauges(index: Index, tmp_path: Path) -> None:
    """`inlet serve` (no daemon) shows each source's schedule gauges too: replicas are alerted on."""
    from inlet.connectors.files import FilesConfig
    from inlet.storage.sqlite.state import SqliteState

    state = SqliteState(tmp_path / "state.db")
    run = state.start_run("docs", "sync")
    run.outcome, run.error = "failed", "boom"
    state.finish_run(run)
    source = FilesConfig(name="docs", type="files", path=tmp_path)
    settings = settings_for(index.path).model_copy(update={"sources": [source]})
    try:
        with TestClient(create_app(settings, index=index, state=state, env=KEYS)) as client:
            text = client.get("/metrics", headers=OPS).text
    finally:
        state.close()
    assert (
        'inlet_source_failure_streak{source="docs"} 1.0' in text
        and 'inlet_source_last_run_ok{source="docs"} 0.0' in text
    )


def test_request_id_echoed_or_made(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    hostile = client.get("/healthz", headers={"X-Request-ID": "x <script>"})
    assert hostile.headers["x-request-id"] != "x <script>"


def test_access_log_names_key_not_secret(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="inlet.server.access"):
        client.post("/v1/search", json={"query": "deploy"}, headers={**ALICE, "X-Request-ID": "log-test-1"})
    lines = [r.getMessage() for r in caplog.records if "log-test-1" in r.getMessage()]
    assert lines and '"key": "alice-laptop"' in lines[0] and '"status": 200' in lines[0]
    assert all(KEYS["INLET_KEY_ALICE"] not in r.getMessage() for r in caplog.records)


def test_cors_off_by_default_on_when_configured(client: TestClient, index: Index) -> None:
    origin = {"Origin": "https://app.example"}
    assert "access-control-allow-origin" not in client.get("/healthz", headers=origin).headers
    settings = settings_for(index.path, cors_origins=["https://app.example"])
    for cors in client_for(settings, index):
        assert cors.get("/healthz", headers=origin).headers["access-control-allow-origin"] == "https://app.example"
        preflight = cors.options(
            "/v1/search",
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        # a refused key's challenge (where a browser client's OAuth sign-in starts) is readable too
        refused = cors.post("/v1/search", json={"query": "deploy"}, headers=origin)
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "https://app.example"
        exposed = refused.headers["access-control-expose-headers"].lower()
        assert "www-authenticate" in exposed and "retry-after" in exposed


def test_cors_origins_are_read_as_browsers_send_origins_by_cors_and_the_mcp_check_alike(index: Index) -> None:
    """probe29e F7: listed with a trailing slash or capitals, an origin passed the /mcp check but
    its preflight was refused; `*` allowed every preflight and refused every /mcp request."""
    from inlet.errors import ConfigError

    origin = {"Origin": "https://app.example"}
    settings = settings_for(index.path, cors_origins=["https://App.Example/"])
    assert settings.server.cors_origins == ["https://app.example"]
    for cors in client_for(settings, index):
        preflight = cors.options(
            "/mcp",
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin["Origin"]
        called = cors.post("/mcp", json={}, headers={**origin, **OPS, "Accept": "application/json, text/event-stream"})
        assert called.status_code != 403 and called.headers["access-control-allow-origin"] == origin["Origin"]
        other = cors.post("/mcp", json={}, headers={"Origin": "https://other.example", **OPS})
        assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden_origin"
    for wrong in ["*", "https://app.example/path", "app.example", "https://app.example?x=1", "https://\u00ad.example"]:
        with pytest.raises(ConfigError, match=r"\[server\] key 'cors_origins.0'"):
            parse_config({"server": {"cors_origins": [wrong]}}, Path("inlet.toml"))


def test_an_internationalised_origin_is_kept_as_browsers_send_it(index: Index) -> None:
    """probe34h F2: `https://bücher.example` was kept in Unicode; a browser's Origin header carries
    the host's ASCII form (UTS #46), so its preflight and /mcp calls were refused."""
    listed = ["https://Bücher.example:443", "https://straße.example", "https://a_b.bücher.example", "https://☃.example"]
    settings = settings_for(index.path, cors_origins=listed)
    assert settings.server.cors_origins == [
        "https://xn--bcher-kva.example",
        "https://xn--strae-oqa.example",
        "https://a_b.xn--bcher-kva.example",  # review34 F3: as browsers send them, not refused
        "https://xn--n3h.example",
    ]
    origin = {"Origin": "https://xn--bcher-kva.example"}
    for cors in client_for(settings, index):
        asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        preflight = cors.options("/v1/search", headers={**origin, **asked})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin["Origin"]


def test_a_symbol_beside_sharp_s_or_final_sigma_is_kept_as_browsers_send_it() -> None:
    """probe35a F4: a label IDNA 2008 refuses (a symbol) got the IDNA 2003 form, which maps ß to ss
    and ς to σ; browsers (UTS #46 non-transitional) keep them, so the origin never matched."""
    listed = ["https://ß☃.example", "https://faß💩.la", "https://ς☃.example", "https://Straße.example"]
    settings = parse_config({"server": {"cors_origins": listed}}, Path("inlet.toml"))
    assert settings.server.cors_origins == [
        "https://xn--zca031q.example",
        "https://xn--fa-hia89822c.la",
        "https://xn--3xa256o.example",
        "https://xn--strae-oqa.example",
    ]


def test_context_packs_only_results_at_or_above_min_relevance(client: TestClient) -> None:
    query = {"query": "deploy the billing service"}
    some = client.post("/v1/context", json={**query, "min_relevance": 0.0}, headers=ALICE).json()
    assert some["results"] and some["citations"] and some["match"] in ("strong", "weak", "none")
    assert all(r["relevance"] >= 0.0 for r in some["results"])
    floor = max(r["relevance"] for r in some["results"])  # only the most relevant qualify
    best = client.post("/v1/context", json={**query, "min_relevance": floor}, headers=ALICE).json()
    assert [r["doc_id"] for r in best["results"]] == [r["doc_id"] for r in some["results"] if r["relevance"] >= floor]
    none = client.post("/v1/context", json={**query, "min_relevance": 1.0}, headers=ALICE).json()
    assert none["results"] == [] and none["citations"] == [] and none["match"] == "none"
    assert "\n" not in none["context"] and none["context"].startswith("Nothing visible to you matched")
    assert client.post("/v1/context", json={**query, "min_relevance": 1.5}, headers=ALICE).status_code == 422


def test_openapi_schemas_match_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json", headers=ALICE).json()
    schemas = spec["components"]["schemas"]
    assert set(schemas["SearchResult"]["properties"]) == RESULT_FIELDS
    assert {"results", "match", "interpreted"} <= set(schemas["SearchResponse"]["properties"])
    assert {"context", "citations", "results", "match", "interpreted"} <= set(schemas["ContextResponse"]["properties"])
    assert schemas["ContextBody"]["properties"]["min_relevance"]["default"] == MIN_RELEVANCE
    assert set(schemas["Interpreted"]["properties"]) == {"after", "before", "source_types", "people", "sort"}
    post = spec["paths"]["/v1/search"]["post"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SearchResponse")
    assert post["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "/v1/documents/{doc_id}" in spec["paths"]


def test_openapi_declares_the_bearer_key_every_route_but_the_probes_needs(client: TestClient) -> None:
    """Clients and agent tools generated from the description read the key from here (KeyGuard, a
    middleware, is invisible to the schema generator)."""
    spec = client.get("/openapi.json", headers=ALICE).json()
    schemes = spec["components"].get("securitySchemes", {})
    assert set(schemes) == {"bearer"} and {k: schemes["bearer"].get(k) for k in ("type", "scheme")} == {
        "type": "http",
        "scheme": "bearer",
    }
    assert "API key" in schemes["bearer"]["description"] and "OAuth access token" in schemes["bearer"]["description"]
    assert spec["security"] == [{"bearer": []}]
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            assert operation.get("security") == ([] if path in ("/healthz", "/readyz") else None), path
    assert client.get("/healthz").status_code == 200 and client.get("/v1/sources").status_code == 401  # as declared


def test_openapi_declares_public_metrics_keyless(index: Index) -> None:
    app = create_app(settings_for(index.path, metrics_public=True), index=index, env=KEYS)
    paths = app.openapi()["paths"]
    assert paths["/metrics"]["get"]["security"] == [] and "security" not in paths["/v1/sources"]["get"]


# --- content types (issue 14: `curl -d` declares a form) -------------------------------------------
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_json_body_is_read_whatever_the_declared_content_type(client: TestClient, content_type: str | None) -> None:
    headers = {**ALICE, **({"Content-Type": content_type} if content_type else {})}
    response = client.post("/v1/search", content=b'{"query": "deploy the billing service", "k": 2}', headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["doc_id"] == "eng:C1/100"


def test_a_body_that_is_not_json_is_415_naming_the_header(client: TestClient) -> None:
    response = client.post(
        "/v1/search", content=b"query=deploy", headers={**ALICE, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/x-www-form-urlencoded" in error["message"]
    assert "application/json" in error["message"]


def test_every_keyed_route_declares_the_middlewares_answers_and_admin_answers_match_their_schemas(
    client: TestClient,
) -> None:
    """A client generated from /openapi.json knows the 429 (and 401/408/413) of every route that
    takes a key, and the fields of the admin routes' answers."""
    import jsonschema

    spec = client.get("/openapi.json", headers=OPS).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path not in ("/healthz", "/readyz", "/docs"):
                assert {"401", "408", "413", "429"} <= set(operation["responses"]), (method, path)

    def valid(response: Any, path: str, method: str = "post") -> None:
        declared = spec["paths"][path][method]["responses"][str(response.status_code)]
        schema = declared["content"]["application/json"]["schema"]
        jsonschema.validate(response.json(), {**schema, "components": spec["components"]})

    action = "/v1/admin/sources/{name}/{action}"
    valid(client.post("/v1/admin/sources/eng/pause", headers=OPS), action)
    valid(client.post("/v1/admin/sources/eng/resume", headers=OPS), action)
    valid(client.get("/v1/admin/console", headers=OPS), "/v1/admin/console", "get")
    valid(client.post("/v1/admin/sync", json={}, headers=OPS), "/v1/admin/sync")  # 409: no daemon here
