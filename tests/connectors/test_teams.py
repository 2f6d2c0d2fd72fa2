"""The teams connector against the sandbox's Graph Teams API (real msal + httpx over HTTPS)."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from inlet.connectors.kit.retry import RetryPolicy
from inlet.errors import AccessRefusedError, NothingInScopeError, RetriableError
from inlet.connectors.model import Checkpoint, Deletion, Document, Skipped
from inlet.connectors.teams import TeamsConfig, TeamsConnector, _thread_of
from inlet.sandbox import graph_teams
from inlet.sandbox.graph_teams_state import Channel, Message, TeamsState
from inlet.sandbox.server import Sandbox

ENGINEERING = ["abilinski@example.com", "doubledeez@example.com", "hamza@example.com"]


def connector(
    sb: Sandbox, sleeps: list[float] | None = None, clock: Callable[[], float] | None = None, **overrides: Any
) -> TeamsConnector:
    block, env = graph_teams.source(sb.ctx, sb.ctx.workdir)
    config = tomllib.loads(block)["sources"][0] | overrides
    return TeamsConnector(
        TeamsConfig(**config),
        env,
        policy=RetryPolicy(sleep=(sleeps if sleeps is not None else []).append, jitter=0),
        **({"clock": clock} if clock else {}),
    )


def run(conn: TeamsConnector, checkpoint: dict[str, Any] | None = None) -> tuple[list[Any], dict[str, Any]]:
    items = list(conn.load(checkpoint))
    assert isinstance(items[-1], Checkpoint)
    return items, items[-1].state


def docs(items: list[Any]) -> dict[str, Document]:
    return {i.title: i for i in items if isinstance(i, Document)}


def state(sb: Sandbox) -> TeamsState:
    return graph_teams.teams_state(sb.ws)


def channel(sb: Sandbox, name: str, team: str = "Engineering") -> Channel:
    return next(c for c in state(sb).channels.values() if c.name == name and state(sb).teams[c.team_id].name == team)


def root(sb: Sandbox, text: str) -> Message:
    return next(m for m in state(sb).messages.values() if text in m.html and m.reply_to is None)


def delete_thread(st: TeamsState, msg: Message) -> None:
    """The root and every reply deleted (soft): nothing of the thread is left to show."""
    for reply in st.replies(msg.id):
        st.delete(reply.id)
    st.delete(msg.id)


def thread_id(sb: Sandbox, msg: Message) -> str:
    return f"sandbox-teams:{msg.channel_id}:{msg.id}"


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture()
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def backfill(shared: Sandbox) -> tuple[list[Any], dict[str, Any]]:
    return run(connector(shared))


def test_one_document_per_thread_rendered_as_plain_text(backfill: Any) -> None:
    got = docs(backfill[0])
    assert len(got) == 6 and len({d.id for d in got.values()}) == 6
    latency = got["Search latency"]
    assert (
        latency.text.splitlines()[0] == "Harry Potter (2024-03-04 09:00): The search latency regression "
        "is fixed in release 4.2."
    )
    assert "Thanks Harry Potter! Was it the vector cache?" in latency.text  # a mention reads as the name
    assert "https://wiki.example.com/cache" in latency.text  # a link keeps its URL
    assert "[Latency report.docx](https://sandbox.sharepoint.com/" in latency.text  # a file: name and URL
    assert "<" not in latency.text.replace("<https://", "")
    assert latency.metadata == {
        "team": "Engineering",
        "channel": "General",
        "participants": ["Harry Potter", "Hermione Granger"],
    }
    assert latency.url.startswith("https://") and "/l/message/" in latency.url
    assert "General: Reminder: the design review moves to Thursday at 10:00." in got  # no subject


def test_acl_is_the_team_for_standard_channels_and_the_channel_for_private_and_shared(backfill: Any) -> None:
    by_channel = {(d.metadata["team"], d.metadata["channel"]): d.acl.users for d in docs(backfill[0]).values()}
    assert by_channel[("Engineering", "General")] == ENGINEERING
    assert by_channel[("Engineering", "leadership")] == ["abilinski@example.com"]
    assert by_channel[("Engineering", "partners")] == ["abilinski@example.com", "heroeshannibal@example.com"]
    assert by_channel[("Support", "General")] == ["doubledeez@example.com", "heroeshannibal@example.com"]


def test_an_unchanged_tenant_costs_one_delta_call_per_channel_and_its_recent_replies(
    shared: Sandbox, backfill: Any
) -> None:
    """Delta lists no reply: the replies of the recently active threads (every seeded thread: they
    are within a week of each other) are read again, one `$batch` per channel, and yield nothing."""
    shared.faults.reset_counts()
    items, _ = run(connector(shared), backfill[1])
    assert [i for i in items if not isinstance(i, Checkpoint)] == []
    calls = shared.faults.calls
    assert calls["graph:messages.delta"] == 5 and calls["graph:replies"] == 6 and calls["graph:message"] == 0
    assert calls["graph:teams"] == 1 and calls["graph:batch"] == 2 + 5  # channels and members, own members; replies


def test_globs_select_teams_and_channels(shared: Sandbox) -> None:
    items, _ = run(connector(shared, teams=["eng*"], channels=["incident-*", "general"]))
    assert {(d.metadata["team"], d.metadata["channel"]) for d in docs(items).values()} == {
        ("Engineering", "General"),
        ("Engineering", "incident-db"),
    }


def test_globs_matching_nothing_are_listed_skips_and_none_matching_refuses_the_run(shared: Sandbox) -> None:
    items, _ = run(connector(shared, teams=["eng*", "Engneering"], channels=["incident-*", "Generl"]))
    assert [(s.title, s.reason, s.failed) for s in items if isinstance(s, Skipped)] == [
        (
            "teams = 'Engneering'",
            "key 'teams': no team matches 'Engneering' (closest: 'Engineering'); nothing is read for it",
            False,
        ),
        (
            "channels = 'Generl'",
            "key 'channels': no channel of the teams read matches 'Generl' (closest: 'General'); "
            "nothing is read for it",
            False,
        ),
    ]
    assert {d.metadata["channel"] for d in docs(items).values()} == {"incident-db"}
    for keys in ({"teams": ["Engneering"]}, {"channels": ["Generl"]}):  # nothing read, nothing pruned
        for read in (run, lambda c: list(c.live_ids())):
            with pytest.raises(NothingInScopeError, match="closest: 'Engineering'|closest: 'General'"):
                read(connector(shared, **keys))


def test_edited_and_deleted_replies_rerender_and_a_deleted_root_deletes(sb: Sandbox) -> None:
    conn = connector(sb)
    items, cp = run(conn)
    st = state(sb)
    latency = root(sb, "search latency")
    thanks, answer = st.replies(latency.id)
    with sb.ws.lock:
        st.edit(thanks.id, "<p>Thanks! Which cache was it?</p>")
        st.delete(answer.id)
        review = root(sb, "design review")
        st.delete(review.id)
        st.post(
            channel(sb, "incident-db").id,
            "hamza@example.com",
            "<p>Postmortem on Friday.</p>",
            root(sb, "Database failover").id,
        )
    items, cp = run(conn, cp)
    got = docs(items)
    failover = "incident-db: Database failover started at 02:10; replicas are catching up."
    assert set(got) == {"Search latency", failover}
    assert "Which cache was it?" in got["Search latency"].text and "cache notes" not in got["Search latency"].text
    assert "Postmortem on Friday." in got[failover].text
    assert {i.id for i in items if isinstance(i, Deletion)} == {thread_id(sb, review)}
    items, _ = run(conn, cp)
    assert [i for i in items if not isinstance(i, Checkpoint)] == []


def test_a_membership_change_rewrites_acls_with_the_same_text(sb: Sandbox) -> None:
    conn = connector(sb)
    items, cp = run(conn)
    before = docs(items)
    with sb.ws.lock:
        channel(sb, "leadership").members.append("doubledeez@example.com")
    items, cp = run(conn, cp)
    after = docs(items)
    assert list(after) == ["leadership: Headcount plan: two more search engineers next quarter."]
    for title, doc in after.items():
        assert doc.acl.users == ["abilinski@example.com", "doubledeez@example.com"]
        assert doc.content_hash() == before[title].content_hash()
    assert not [i for i in items if isinstance(i, Deletion)]


def test_an_expired_delta_link_rereads_and_finds_deleted_threads(sb: Sandbox) -> None:
    conn = connector(sb)
    items, cp = run(conn)
    st = state(sb)
    with sb.ws.lock:
        gone = root(sb, "slow exports")
        delete_thread(st, gone)
        st.expire_delta_tokens()
    items, cp = run(conn, cp)
    assert {i.id for i in items if isinstance(i, Deletion)} == {thread_id(sb, gone)}
    items, _ = run(conn, cp)
    assert [i for i in items if not isinstance(i, Checkpoint)] == []


def test_throttling_waits_retry_after_on_calls_and_inside_batches(sb: Sandbox) -> None:
    sleeps: list[float] = []
    sb.faults.fail("graph", "messages.delta", 429, times=1, retry_after=6)
    sb.faults.fail("graph", "replies", 429, times=1, retry_after=4)
    sb.faults.fail("graph", "channels", 503, times=1, retry_after=2)
    items, _ = run(connector(sb, sleeps))
    assert len(docs(items)) == 6 and not [i for i in items if isinstance(i, Skipped)]
    assert {6, 4, 2} <= set(sleeps)


def test_a_delta_resumed_from_an_older_checkpoint_deletes_a_thread_it_never_recorded(sb: Sandbox) -> None:
    """A killed run indexed a new thread but never saved the checkpoint after it; the thread's root
    is deleted before the resume, whose round (from the older checkpoint) must delete the document."""
    conn = connector(sb)
    _, before = run(conn)
    st = state(sb)
    with sb.ws.lock:
        late = st.post(channel(sb, "incident-db").id, "hamza@example.com", "<p>Replica lag alert.</p>")
    items, _ = run(conn, before)  # indexed; this checkpoint is the one the kill lost
    assert thread_id(sb, late) in {d.id for d in items if isinstance(d, Document)}
    with sb.ws.lock:
        st.delete(late.id)
    items, _ = run(conn, before)
    assert thread_id(sb, late) in {i.id for i in items if isinstance(i, Deletion)}


def test_a_restarted_first_round_finds_deletions_in_its_listing_and_live_ids_agrees(sb: Sandbox) -> None:
    """A first delta round lists no deleted roots, but the full listing that ends it does (a deleted
    root's replies may live on): a backfill restarted after a kill deletes the thread the killed run
    indexed, and `live_ids` (what the engine asks after an unfinished run) leaves it out too."""
    conn = connector(sb)
    items, _ = run(conn)
    gone = root(sb, "slow exports")
    with sb.ws.lock:
        delete_thread(state(sb), gone)
    again, _ = run(conn)  # the restarted round
    assert {i.id for i in again if isinstance(i, Deletion)} == {thread_id(sb, gone)}
    assert TeamsConnector.deletions_from_checkpoint
    live = set(conn.live_ids())
    assert live == {d.id for d in items if isinstance(d, Document)} - {thread_id(sb, gone)}


def test_live_ids_refuses_to_decide_when_a_channel_cannot_be_read(sb: Sandbox) -> None:
    """An unreadable channel proves nothing gone: `live_ids` raises a retriable error naming it, so the
    engine deletes none of its threads (a sync skips the channel and keeps them)."""
    conn = connector(sb)
    sb.faults.fail("graph", "messages", 403, times=1, reason="Forbidden")
    with pytest.raises(RetriableError, match=r"source 'sandbox-teams': channel \S+/\S+ cannot be read"):
        set(conn.live_ids())
    assert set(conn.live_ids())  # readable again: the listing completes


def test_a_renamed_team_or_channel_yields_its_threads_again_under_the_new_names(sb: Sandbox) -> None:
    conn = connector(sb)
    items, cp = run(conn)
    leadership = {t: d for t, d in docs(items).items() if d.metadata["channel"] == "leadership"}
    with sb.ws.lock:
        team = state(sb).teams[channel(sb, "leadership").team_id]
        team.name = "Engineering (renamed)"
    items, cp = run(conn, cp)
    renamed = [i for i in items if isinstance(i, Document)]
    assert renamed and {d.metadata["team"] for d in renamed} == {"Engineering (renamed)"}
    assert set(leadership) <= {d.title for d in renamed}  # every thread again, not only changed ones
    assert not [i for i in items if isinstance(i, Deletion)]
    items, cp = run(conn, cp)
    assert not [i for i in items if isinstance(i, Document)]  # then quiet again


def test_since_compares_instants_not_strings(sb: Sandbox) -> None:
    """`...:00.500000Z` sorts before `...:00Z` as text, yet is half a second later."""
    since = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    msg = next(m for m in state(sb).messages.values() if m.reply_to is None)
    with sb.ws.lock:
        msg.modified = since + dt.timedelta(milliseconds=500)
    items = list(connector(sb).load(None, since=since))
    assert {d.id for d in items if isinstance(d, Document)} == {thread_id(sb, msg)}


def test_threads_older_than_delta_s_eight_months_are_indexed_kept_and_re_read(sb: Sandbox) -> None:
    """Delta lists only the last eight months (the seeded threads are older): the full listing
    (`GET .../messages`) indexes them, `live_ids` and a 410 re-read keep them, and a membership
    change reaches them."""
    with sb.ws.lock:
        state(sb).delta_window = dt.timedelta(days=243)
    conn = connector(sb)
    items, cp = run(conn)
    first = {d.id: d for d in items if isinstance(d, Document)}
    assert len(first) == 6
    assert set(conn.live_ids()) == set(first)
    with sb.ws.lock:
        state(sb).expire_delta_tokens()
    items, cp = run(conn, cp)
    assert not [i for i in items if isinstance(i, Deletion)]
    with sb.ws.lock:
        channel(sb, "leadership").members.append("doubledeez@example.com")
    items, cp = run(conn, cp)
    after = [d for d in items if isinstance(d, Document)]
    assert [d.id for d in after] == [i for i, d in first.items() if d.metadata["channel"] == "leadership"]
    assert all("doubledeez@example.com" in d.acl.users for d in after)
    assert not [i for i in items if isinstance(i, Deletion)]


def test_a_scoped_run_naming_a_thread_reads_it_though_delta_does_not_list_its_root(sb: Sandbox) -> None:
    """Graph documents delta as listing roots, and never says a reply moves its root: a notification
    naming the reply asks for `CHANNEL/ROOT`, and the scoped run reads that thread again."""
    st = state(sb)
    assert not st.replies_move_root  # the sandbox's default: as Graph documents delta
    conn = connector(sb)
    _, cp = run(conn)
    target = root(sb, "slow exports")
    with sb.ws.lock:
        st.post(target.channel_id, "doubledeez@example.com", "<p>The heron cache is warm again.</p>", target.id)
    items = list(conn.load_scope(cp, frozenset({target.channel_id})))
    assert not [d for d in items if isinstance(d, Document)], "delta does not list the root"
    items = list(conn.load_scope(cp, frozenset({f"{target.channel_id}/{target.id}"})))
    got = [d for d in items if isinstance(d, Document)]
    assert [d.id for d in got] == [thread_id(sb, target)] and "heron cache" in got[0].text


def test_a_shared_channel_s_readers_include_the_teams_it_is_shared_with(sb: Sandbox) -> None:
    support = next(t for t in state(sb).teams.values() if t.name == "Support")
    with sb.ws.lock:
        channel(sb, "partners").shared_with.append(support.id)  # Graph: /allMembers, not /members
    items, _ = run(connector(sb))
    partners = next(d for d in docs(items).values() if d.metadata["channel"] == "partners")
    assert set(partners.acl.users) == {"abilinski@example.com", "heroeshannibal@example.com", *support.members}


def test_an_old_root_deleted_or_edited_reaches_the_index_through_its_notification(sb: Sandbox) -> None:
    """Delta leaves out roots older than eight months, edits and deletions included: the
    notification names the root, and the scoped run reads it."""
    with sb.ws.lock:
        state(sb).delta_window = dt.timedelta(days=243)  # every seeded thread is older
    conn = connector(sb)
    _, cp = run(conn)
    old, other = root(sb, "slow exports"), root(sb, "design review moves")
    with sb.ws.lock:
        delete_thread(state(sb), old)
        state(sb).edit(other.id, "<div>Reminder: the design review moves to Friday at 11:00.</div>")
    scope = {
        _thread_of(m.channel_id, f"teams('t')/channels('{m.channel_id}')/messages('{m.id}')") for m in (old, other)
    }
    assert scope == {f"{old.channel_id}/{old.id}", f"{other.channel_id}/{other.id}"}
    items = list(conn.load_scope(cp, frozenset(scope)))
    assert thread_id(sb, old) in {i.id for i in items if isinstance(i, Deletion)}
    assert "Friday at 11:00" in next(d.text for d in items if isinstance(d, Document) and d.id == thread_id(sb, other))


def test_system_events_are_not_threads_and_a_card_is_read_as_its_text(sb: Sandbox) -> None:
    general = channel(sb, "General")
    card = {
        "type": "AdaptiveCard",
        "body": [
            {"type": "TextBlock", "text": "Incident marmot: database failover"},
            {"type": "FactSet", "facts": [{"title": "Severity", "value": "2"}]},
        ],
    }
    hook = {  # an Office 365 connector card, as incoming webhooks (GitHub, Jira) post them
        "title": "GitHub",
        "sections": [{"activityTitle": "PR merged", "text": "by bob", "facts": [{"name": "Repo", "value": "inlet"}]}],
    }
    with sb.ws.lock:
        event = state(sb).post(general.id, "hamza@example.com", "<systemEventMessage/>", kind="systemEventMessage")
        alert = state(sb).post(general.id, "hamza@example.com", '<attachment id="card0"></attachment>', cards=[card])
        merged = state(sb).post(general.id, "hamza@example.com", '<attachment id="card0"></attachment>', cards=[hook])
    items, _ = run(connector(sb))
    ids = {d.id: d for d in items if isinstance(d, Document)}
    assert thread_id(sb, event) not in ids
    assert "Incident marmot: database failover" in ids[thread_id(sb, alert)].text
    assert "Severity: 2" in ids[thread_id(sb, alert)].text
    assert "PR merged" in ids[thread_id(sb, merged)].text and "Repo: inlet" in ids[thread_id(sb, merged)].text


def test_a_thread_whose_replies_keep_failing_is_a_failed_skip_named_by_its_title(sb: Sandbox) -> None:
    """probe33a F4: one thread whose replies answer 500 after every retry, in `$batch` and alone, is
    that thread's failed skip, named by its title and the call (not "throttling"); every other
    thread is indexed, and the next run reads it again."""
    failover = root(sb, "Database failover started")
    where = f"*/messages/{failover.id}/replies"
    sb.faults.fail("graph", "replies", 500, times=1000, reason="InternalServerError", target=where)
    conn = connector(sb)
    items, cp = run(conn)
    [skip] = [i for i in items if isinstance(i, Skipped)]
    assert skip.failed and skip.id == thread_id(sb, failover) and skip.title
    assert skip.reason.startswith(f"{skip.title}: replies unreadable: GET /teams/")
    assert "/replies: 500 InternalServerError" in skip.reason and "throttl" not in skip.reason
    assert thread_id(sb, failover) not in {d.id for d in items if isinstance(d, Document)}
    assert len(docs(items)) == 5  # every other thread (six in all)
    sb.faults.clear()
    items, _ = run(conn, cp)
    assert [d.id for d in items if isinstance(d, Document)] == [thread_id(sb, failover)]
    assert not [i for i in items if isinstance(i, Skipped)]


def test_replies_failing_in_a_row_are_an_outage_and_the_run_fails_naming_the_call(sb: Sandbox) -> None:
    sb.faults.fail("graph", "replies", 500, times=1000, reason="InternalServerError")
    outage = "^source 'sandbox-teams': 3 reads in a row .*: GET /teams/.*/replies: 500 InternalServerError"
    with pytest.raises(RetriableError, match=outage) as caught:
        run(connector(sb))
    assert "throttl" not in str(caught.value)  # a server error is not called throttling


def test_a_private_channel_whose_members_keep_failing_is_a_skip_and_the_others_go_on(sb: Sandbox) -> None:
    """probe33a F4: a private channel's member list answering 503 after every retry is that
    channel's failed skip (its threads kept as indexed); the other channels are read."""
    leads = channel(sb, "leadership")
    where = f"*/channels/{leads.id}/members"
    sb.faults.fail("graph", "members", 503, times=1000, reason="ServiceUnavailable", target=where)
    items, _ = run(connector(sb))
    [skip] = [i for i in items if isinstance(i, Skipped)]
    assert skip.failed and skip.folder and skip.title == "channel Engineering/leadership"
    assert "its members cannot be read" in skip.reason and "/members: 503 ServiceUnavailable" in skip.reason
    found = {d.metadata["channel"] for d in items if isinstance(d, Document)}
    assert "leadership" not in found and {"General", "incident-db", "partners"} <= found


def test_a_channel_whose_members_are_refused_is_a_skip_and_the_others_go_on(sb: Sandbox) -> None:
    conn = connector(sb)
    first, cp = run(conn)
    sb.faults.fail("graph", "members", 403, times=1)  # the first member list: a team's, for its standard channels
    with sb.ws.lock:
        state(sb).post(channel(sb, "leadership").id, "abilinski@example.com", "<p>Bison offsite is on.</p>")
    items, kept = run(conn, cp)
    skips = [i for i in items if isinstance(i, Skipped)]
    assert skips and all(s.folder and "members cannot be read" in s.reason for s in skips)
    refused = {channel(sb, "General").id, channel(sb, "incident-db").id}  # the change events no longer watch them
    assert set(conn.checkpoint_resources(kept)) == set(conn.checkpoint_resources(cp)) - refused
    assert refused < set(conn.checkpoint_resources(cp))
    assert {s.title for s in skips} == {"channel Engineering/General", "channel Engineering/incident-db"}
    assert not [i for i in items if isinstance(i, Deletion)]  # their threads stay as they are
    assert [d.title for d in items if isinstance(d, Document)] == ["leadership: Bison offsite is on."]


@pytest.mark.parametrize("replies_move_root", [False, True], ids=["as-documented", "root-moved"])
def test_a_reply_added_edited_or_deleted_reaches_the_next_sync_whether_or_not_delta_lists_its_root(
    sb: Sandbox, replies_move_root: bool
) -> None:
    """Graph documents delta as listing roots "without the replies": the replies of the recently
    active threads are read again each sync, and only the threads whose replies changed are yielded."""
    st = state(sb)
    with sb.ws.lock:
        st.replies_move_root = replies_move_root
    conn = connector(sb)
    _, cp = run(conn)
    latency, failover = root(sb, "search latency"), root(sb, "Database failover")
    thanks, answer = st.replies(latency.id)
    with sb.ws.lock:
        st.post(failover.channel_id, "hamza@example.com", "<p>Postmortem with the kestrel team.</p>", failover.id)
        st.edit(thanks.id, "<p>Thanks! Which cache was it?</p>")
        st.delete(answer.id)
    items, cp = run(conn, cp)
    got = {d.id: d for d in items if isinstance(d, Document)}
    assert set(got) == {thread_id(sb, latency), thread_id(sb, failover)}
    assert "kestrel team" in got[thread_id(sb, failover)].text
    assert "Which cache was it?" in got[thread_id(sb, latency)].text
    assert "cache notes" not in got[thread_id(sb, latency)].text
    assert not [i for i in items if isinstance(i, (Deletion, Skipped))]
    items, _ = run(conn, cp)
    assert [i for i in items if not isinstance(i, Checkpoint)] == []


def test_a_late_reply_to_an_older_thread_is_read_by_the_channel_s_reconcile(sb: Sandbox) -> None:
    """A thread last active more than `lookback_days` before its channel's newest activity is not
    re-read each sync: the daily reconcile (`reconcile_every`) lists the channel, reads every
    thread's replies and yields only the one that changed."""
    now = [1_000_000_000.0]
    conn = connector(sb, clock=lambda: now[0])
    st = state(sb)
    incidents = channel(sb, "incident-db")
    failover = root(sb, "Database failover")  # seeded in 2024
    _, cp = run(conn)
    with sb.ws.lock:
        fresh = st.post(incidents.id, "hamza@example.com", "<p>Replica lag alert on db-7.</p>")  # now
    items, cp = run(conn, cp)
    assert [d.id for d in items if isinstance(d, Document)] == [thread_id(sb, fresh)]
    with sb.ws.lock:
        st.post(incidents.id, "doubledeez@example.com", "<p>Root cause: the plover switch.</p>", failover.id)
    now[0] += 3600
    items, cp = run(conn, cp)
    assert not [d for d in items if isinstance(d, Document)]  # outside the week before the channel's newest
    now[0] += 86400
    items, cp = run(conn, cp)
    got = [d for d in items if isinstance(d, Document)]
    assert [d.id for d in got] == [thread_id(sb, failover)] and "plover switch" in got[0].text
    assert not [i for i in items if isinstance(i, (Deletion, Skipped))]
    items, _ = run(conn, cp)
    assert [i for i in items if not isinstance(i, Checkpoint)] == []


def test_a_purged_thread_is_deleted_whether_delta_lists_it_removed_or_not_at_all(sb: Sandbox) -> None:
    """A thread removed outright: delta lists its root as `@removed`, or (a retention policy) not
    at all and its reads answer 404; either way the next sync deletes it."""
    conn = connector(sb)
    _, cp = run(conn)
    removed, retained = root(sb, "slow exports"), root(sb, "search latency")
    with sb.ws.lock:
        state(sb).purge(removed.id)
        state(sb).purge(retained.id, logged=False)
    items, cp = run(conn, cp)
    assert {i.id for i in items if isinstance(i, Deletion)} == {thread_id(sb, removed), thread_id(sb, retained)}
    assert not [i for i in items if isinstance(i, (Document, Skipped))]
    assert set(conn.live_ids()) >= {i.id for i in run(conn)[0] if isinstance(i, Document)}


def test_a_thread_whose_replies_answer_404_is_deleted_not_kept(sb: Sandbox) -> None:
    """A root delta lists whose replies Graph answers 404 (the thread purged in between) is gone:
    its document is deleted, not left searchable."""
    conn = connector(sb)
    _, cp = run(conn)
    review = root(sb, "design review")
    with sb.ws.lock:
        state(sb).edit(review.id, "<div>Reminder: the design review moves to Friday.</div>")
    sb.faults.fail("graph", "replies", 404, times=1, reason="NotFound")
    items, _ = run(conn, cp)
    assert [i.id for i in items if isinstance(i, Deletion)] == [thread_id(sb, review)]


def test_a_team_whose_channels_are_refused_is_a_skip_and_the_other_teams_go_on(sb: Sandbox) -> None:
    conn = connector(sb)
    first, cp = run(conn)
    engineering = {d.id for d in first if isinstance(d, Document) and d.metadata["team"] == "Engineering"}
    desk = channel(sb, "General", "Support")
    with sb.ws.lock:
        late = state(sb).post(desk.id, "doubledeez@example.com", "<p>Exports are fast again.</p>")
    sb.faults.fail("graph", "channels", 404, times=1, reason="No team found with Group Id")  # Engineering's
    items, kept = run(conn, cp)
    skips = [i for i in items if isinstance(i, Skipped)]
    assert all(s.failed for s in skips) and "team Engineering" in {s.title for s in skips}
    assert all(s.folder for s in skips if s.title != "team Engineering")  # its channels' threads are kept
    eng = next(t for t in state(sb).teams.values() if t.name == "Engineering")
    assert {s.id for s in skips if s.folder} == {f"sandbox-teams:{c}:" for c in eng.channels}
    assert [d.id for d in items if isinstance(d, Document)] == [thread_id(sb, late)]
    assert not [i for i in items if isinstance(i, Deletion)]
    assert set(conn.checkpoint_resources(kept)) == {desk.id}  # no subscription to what was not read
    sb.faults.fail("graph", "channels", 404, times=1)
    with pytest.raises(RetriableError, match="the channels of team Engineering cannot be listed"):
        set(conn.live_ids())
    items, _ = run(conn, kept)  # listed again: nothing was lost, nothing to re-read
    assert not [i for i in items if isinstance(i, (Deletion, Skipped))]
    assert engineering <= set(conn.live_ids())


def test_replies_the_sync_could_not_check_are_a_failed_skip_kept_and_read_again(sb: Sandbox) -> None:
    """A recently active thread whose replies the sync's check cannot read (and cannot on a second
    try) is recorded, not only logged: a failed skip that keeps it, read again at the next sync."""
    conn = connector(sb, teams=["Support"])
    _, cp = run(conn)
    sb.faults.fail("graph", "replies", 403, times=2, reason="Forbidden")
    items, cp = run(conn, cp)
    skips = [i for i in items if isinstance(i, Skipped)]
    assert len(skips) == 1 and skips[0].failed and "replies unreadable" in skips[0].reason
    assert not [i for i in items if isinstance(i, (Document, Deletion))]
    items, _ = run(conn, cp)
    assert skips[0].id in {d.id for d in items if isinstance(d, Document)}  # read again, whole
    assert not [i for i in items if isinstance(i, Skipped)]


def test_a_refused_team_list_names_the_source_the_call_and_the_permission(sb: Sandbox) -> None:
    """`GET /teams` refused (the app's consent withdrawn): the run's error says whose, which call and
    what to grant, not only Graph's `403 Authorization_RequestDenied`."""
    conn = connector(sb)
    _, cp = run(conn)
    sb.faults.fail("graph", "teams", 403, times=100, reason="Authorization_RequestDenied")
    with pytest.raises(AccessRefusedError) as caught:
        run(conn, cp)
    message = str(caught.value)
    assert message.startswith("source 'sandbox-teams': the app may not read it (GET /teams: 403 Authorization_")
    assert message.endswith("the app needs the application permission Team.ReadBasic.All, with admin consent")


def test_every_channel_s_messages_refused_fails_the_run_and_one_refused_stays_a_skip(sb: Sandbox) -> None:
    """ChannelMessage.Read.All withdrawn: every channel's delta refused, nothing read: the run fails,
    naming each channel, and deletes nothing. One channel refused among readable ones is a failed
    skip naming the permission; the others are read."""
    conn = connector(sb)
    _, cp = run(conn)
    sb.faults.fail("graph", "messages.delta", 403, times=1, reason="Forbidden")
    items, cp = run(conn, cp)
    [skip] = [i for i in items if isinstance(i, Skipped)]
    assert skip.failed and "/messages/delta: 403 Forbidden" in skip.reason
    assert skip.reason.endswith("the app needs the application permission ChannelMessage.Read.All, with admin consent")
    sb.faults.fail("graph", "messages.delta", 403, times=1000, reason="Forbidden")
    items = []
    with pytest.raises(AccessRefusedError) as caught:
        items.extend(conn.load(cp))
    message = str(caught.value)
    assert message.startswith("source 'sandbox-teams': no team or channel it is configured to read could be read")
    assert "channel Engineering/General: the app may not read it" in message and "ChannelMessage.Read.All" in message
    assert not [i for i in items if isinstance(i, (Deletion, Document))]


def test_a_subscription_is_labelled_by_its_channel_s_team_and_name(backfill: Any, shared: Sandbox) -> None:
    """A failing subscription is named by its channel (`inlet status`), not by the tail of its id:
    every channel id ends in `@thread.tacv2`."""
    conn = connector(shared)
    watched = conn.checkpoint_resources(backfill[1])
    general = channel(shared, "General")
    assert watched[general.id] == f"/teams/{general.team_id}/channels/{general.id}/messages"
    assert watched[general.id].label == "Engineering/General"  # type: ignore[attr-defined]


def test_a_deleted_root_with_replies_leaves_the_thread_without_it(sb: Sandbox) -> None:
    """probe33a F1: Teams goes on showing the replies under a deleted post; the thread was deleted
    with its root, replies and all (also never indexed when the root was deleted before the first sync)."""
    conn = connector(sb)
    _, cp = run(conn)
    exports = root(sb, "slow exports")
    with sb.ws.lock:
        state(sb).delete(exports.id)
    items, cp = run(conn, cp)
    (doc,) = [i for i in items if isinstance(i, Document) and i.id == thread_id(sb, exports)]
    assert "export job was throttled" in doc.text and "Customers report" not in doc.text
    assert doc.title.startswith("General: ") and "export job was throttled" in doc.title
    assert thread_id(sb, exports) in set(conn.live_ids())
    fresh, _ = run(connector(sb))  # a first sync of a channel whose post is already deleted
    assert thread_id(sb, exports) in {i.id for i in fresh if isinstance(i, Document)}


def with_a_guest(sb: Sandbox) -> tuple[TeamsConnector, dict[str, Any], TeamsState, Message, Message, str]:
    """A synced sandbox whose "slow exports" thread's one reply is a guest's: (connector, checkpoint,
    state, root, reply, the guest)."""
    conn = connector(sb)
    _, cp = run(conn)
    st = state(sb)
    exports = root(sb, "slow exports")
    (reply,) = st.replies(exports.id)
    with sb.ws.lock:
        st.guests.add(reply.author)
    return conn, cp, st, exports, reply, reply.author


def test_a_message_blocked_for_outsiders_keeps_its_thread_from_guests(sb: Sandbox) -> None:
    """probe33a F2: a message Purview DLP blocks for readers outside the organization
    (`BlockAccessExternal`) was indexed for the whole channel, guests included; `BlockAccess`
    hides a message from everyone; the sender's override lifts either."""
    conn, cp, st, exports, reply, guest = with_a_guest(sb)
    with sb.ws.lock:
        st.flag(reply.id, "BlockAccessExternal")
    items, cp = run(conn, cp)
    (doc,) = [i for i in items if isinstance(i, Document) and i.id == thread_id(sb, exports)]
    assert guest not in doc.acl.users and doc.acl.users == [exports.author]
    with sb.ws.lock:
        st.flag(reply.id, "BlockAccess")
    items, cp = run(conn, cp)
    (doc,) = [i for i in items if isinstance(i, Document) and i.id == thread_id(sb, exports)]
    assert "export job" not in doc.text and guest in doc.acl.users  # hidden from all: the rest is for all
    with sb.ws.lock:
        st.flag(reply.id, "BlockAccessExternal", user_action="Override")
    items, _ = run(conn, cp)
    (doc,) = [i for i in items if isinstance(i, Document) and i.id == thread_id(sb, exports)]
    assert guest in doc.acl.users


def test_a_member_of_another_tenant_is_outside_when_tenant_id_is_a_domain(sb: Sandbox) -> None:
    """probe34a: with `tenant_id` written as a domain (as the sandbox's config has it), a shared
    channel's member from another tenant (no guest role, another `tenantId`) kept reading a thread
    blocked for outsiders; the tenant's id now comes from the app token's `tid`."""
    conn = connector(sb)
    assert "." in conn.config.tenant_id  # the domain form
    _, cp = run(conn)
    st = state(sb)
    exports = root(sb, "slow exports")
    (reply,) = st.replies(exports.id)
    with sb.ws.lock:
        st.outsiders[reply.author] = "0f0e0d0c-0000-4000-8000-fab71ca00001"
        st.flag(reply.id, "BlockAccessExternal")
    items, _ = run(conn, cp)
    (doc,) = [i for i in items if isinstance(i, Document) and i.id == thread_id(sb, exports)]
    assert reply.author not in doc.acl.users and doc.acl.users == [exports.author]


def test_dlp_flags_in_any_spelling_block_and_a_hidden_root_names_nothing(sb: Sandbox) -> None:
    """review33: `dlpAction` is a set of flags, spelt in any case ("notifySender, blockAccessExternal");
    a root hidden from everyone gave the thread its title, and a failed read's skip gave a narrowed
    thread back to guests."""
    conn, cp, st, exports, reply, guest = with_a_guest(sb)
    with sb.ws.lock:
        st.flag(reply.id, "notifySender, blockAccessExternal")
        st.flag(exports.id, "blockAccess")
    items, cp = run(conn, cp)
    (doc,) = [i for i in items if isinstance(i, Document) and i.id == thread_id(sb, exports)]
    assert guest not in doc.acl.users and "slow exports" not in doc.title.lower() and "Slow" not in doc.title
    sb.faults.fail(
        "graph", "replies", 500, times=1000, reason="InternalServerError", target=f"*/messages/{exports.id}/replies"
    )
    with sb.ws.lock:
        st.flag(exports.id, "blockAccess")  # patched again: delta lists the root, its replies are read
    items, _ = run(conn, cp)
    (skip,) = [i for i in items if isinstance(i, Skipped) and i.id == thread_id(sb, exports)]
    assert skip.failed and guest not in skip.acl.users and "Slow" not in skip.title


def test_a_forwarded_message_shows_what_it_forwards(sb: Sandbox) -> None:
    """probe33a F3: only the forwarder's comment was indexed, not the message it forwards."""
    conn = connector(sb)
    _, cp = run(conn)
    st = state(sb)
    exports = root(sb, "slow exports")
    with sb.ws.lock:
        fwd = st.post(exports.channel_id, exports.author, "<p>FYI for the team</p>", subject="Window")
        fwd.forwarded = {
            "originalMessageId": "1",
            "originalMessageContent": "<p>The migration window is Friday 22:00, rollback plan quokka-7</p>",
            "originalMessageSender": {"user": {"id": "u1", "displayName": "Carol Example"}},
            "originalSentDateTime": "2026-12-01T10:00:00Z",
        }
    items, _ = run(conn, cp)
    (doc,) = [i for i in items if isinstance(i, Document) and i.id == thread_id(sb, fwd)]
    assert "FYI for the team" in doc.text
    assert "Forwarded from Carol Example: The migration window is Friday 22:00, rollback plan quokka-7" in doc.text
