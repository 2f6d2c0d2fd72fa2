"""The index with the real model and real embedded Chroma."""

import os
import threading
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.errors import IndexLockedError
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index
from inlet.storage import Filters


def doc(n: int, text: str, source: str = "wiki", acl: ACL | None = None, when: int = 2024, **extra) -> Document:
    return Document(
        id=f"{source}:{n}",
        source=source,
        source_type=extra.pop("source_type", "files"),
        title=extra.pop("title", f"Doc {n}"),
        text=text,
        acl=acl or ACL(public=True),
        updated_at=datetime(when, 1, 1, tzinfo=timezone.utc),
        **extra,
    )


CORPUS = [
    doc(1, "The cafeteria serves vegetarian lasagna every Thursday at noon."),
    doc(2, "To reset your VPN password, open the IT portal and choose 'forgot password'."),
    doc(3, "Error code XJ-4471 means the badge reader lost its network connection.", when=2020),
    doc(
        4,
        "The merger with Globex closes in March; keep it confidential.",
        acl=ACL(users=["ceo@example.com"]),
        source="exec",
        source_type="slack",
    ),
    doc(
        5,
        "Parking garage B is closed for repairs until the end of the month.",
        acl=ACL(domains=["partner.org"]),
        source="exec",
        source_type="slack",
    ),
]


@pytest.fixture
def index(tmp_path, embedder):
    with Index(IndexConfig(path=tmp_path / "ix"), embedder=embedder) as ix:
        ix.apply(CORPUS, generation=1)
        yield ix


def ids(index, query, **kw):
    hits, _ = search(index, SearchRequest(query=query, recency_half_life_days=0, **kw))
    return [h.doc_id for h in hits]


def chunks(hits: list[tuple[str, float]]) -> list[str]:
    return [chunk for chunk, _ in hits]


def test_dense_search_finds_paraphrases(index):
    assert ids(index, "how do I change my vpn credentials", k=1) == ["wiki:2"]


def test_lexical_half_finds_exact_codes(index):
    assert ids(index, "XJ-4471", k=1, mode="lexical") == ["wiki:3"]
    assert ids(index, "XJ-4471", k=1) == ["wiki:3"]


def test_acl_filters_inside_both_retrievers(index):
    for mode in ("dense", "lexical", "hybrid"):
        assert "exec:4" not in ids(index, "Globex merger", k=10, user="intern@example.com", mode=mode)
        assert "exec:4" in ids(index, "Globex merger", k=10, user="CEO@example.com", mode=mode)
    assert "exec:5" in ids(index, "parking garage repairs", k=10, user="someone@partner.org")
    assert "exec:5" not in ids(index, "parking garage repairs", k=10, user="someone@example.com")
    assert "exec:4" in ids(index, "Globex merger", k=10)  # operator


def test_k_visible_results_come_back_when_k_exist(index):
    assert len(ids(index, "Globex merger", k=3, user="intern@example.com")) == 3


def test_filters_on_source_type_and_time(index):
    assert set(ids(index, "closed", k=10, sources=("exec",))) <= {"exec:4", "exec:5"}
    assert set(ids(index, "closed", k=10, source_types=("slack",))) <= {"exec:4", "exec:5"}
    old = ids(index, "badge network error", k=10, before=datetime(2021, 1, 1, tzinfo=timezone.utc))
    assert old == ["wiki:3"]
    assert "wiki:3" not in ids(index, "badge network error", k=10, after=datetime(2021, 1, 1, tzinfo=timezone.utc))


def test_unchanged_documents_are_not_re_embedded(index):
    stats = index.apply(CORPUS, generation=1)
    assert stats.embedded_chunks == 0 and stats.unchanged == len(CORPUS) and stats.upserted == 0


def test_acl_change_updates_without_embedding_and_takes_effect(index):
    moved = CORPUS[3].model_copy(update={"acl": ACL(users=["intern@example.com"])})
    stats = index.apply([moved], generation=1)
    assert stats.embedded_chunks == 0 and stats.upserted == 1
    for mode in ("dense", "lexical"):
        assert "exec:4" in ids(index, "Globex merger", k=10, user="intern@example.com", mode=mode)
        assert "exec:4" not in ids(index, "Globex merger", k=10, user="ceo@example.com", mode=mode)
    assert index.document("exec:4", ("*", "u:ceo@example.com")) is None
    assert index.document("exec:4", ("*", "u:intern@example.com")).acl.users == ["intern@example.com"]


def test_text_change_re_embeds_and_shrinking_drops_stale_chunks(index):
    long_text = "\n\n".join(f"Paragraph {i} about quarterly revenue in region {i}. " * 8 for i in range(12))
    index.apply([doc(9, long_text)], generation=1)
    before = index.collection.count()
    stats = index.apply([doc(9, "Now a single short paragraph about lasagna.")], generation=1)
    assert stats.embedded_chunks == 1
    assert index.collection.count() < before
    assert index.collection.count() == sum(c for _, c in index.catalog.counts().values())


def test_an_edit_at_the_end_of_a_long_document_rewrites_only_the_vectors_that_changed(index, monkeypatch):
    """A chunk whose text did not change keeps its vector and only takes the new metadata (re-inserting
    ~17k unchanged vectors of a 16 MB file took 45 s after a one-line edit)."""
    paragraphs = [f"Paragraph {i} about quarterly revenue in region {i}. " * 8 for i in range(12)]
    index.apply([doc(9, "\n\n".join(paragraphs), when=2023)], generation=1)
    before = index.collection.get(where={"doc_id": "wiki:9"}, include=["embeddings", "metadatas"])
    upserted: list[str] = []
    upsert = Index._upsert
    monkeypatch.setattr(Index, "_upsert", lambda ix, ids, *rest: upserted.extend(ids) or upsert(ix, ids, *rest))
    edited = doc(9, "\n\n".join(paragraphs[:-1] + ["The last paragraph now names the Osprey launch."]), when=2024)
    index.apply([edited], generation=1)
    after = index.collection.get(where={"doc_id": "wiki:9"}, include=["embeddings", "metadatas"])
    count = index.catalog.stored(["wiki:9"])["wiki:9"].chunks
    assert upserted == [f"wiki:9#{count - 1}"] and len(after["ids"]) == count > 2
    old = dict(zip(before["ids"], before["embeddings"]))
    for cid, vector, meta in zip(after["ids"], after["embeddings"], after["metadatas"]):
        if cid not in upserted:
            assert (vector == old[cid]).all()  # kept
        assert meta["ts"] == datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()  # every chunk: the new time
    assert "wiki:9" in ids(index, "Osprey launch", k=3)
    index.collection.delete(ids=["wiki:9#0"])  # a vector lost meanwhile is written again, not skipped
    index.apply([doc(9, "\n\n".join(paragraphs), when=2025)], generation=1)
    assert "wiki:9#0" in upserted and index.collection.count() == sum(c for _, c in index.catalog.counts().values())


def test_deletion_removes_vectors_and_lexical_rows(index):
    stats = index.apply([], ["wiki:3"])
    assert stats.deleted == 1
    assert "wiki:3" not in ids(index, "XJ-4471 badge", k=10)
    assert index.collection.get(where={"doc_id": "wiki:3"})["ids"] == []
    assert index.document("wiki:3") is None


def test_prune_deletes_documents_not_seen_in_a_generation(index):
    index.apply(CORPUS[:2], generation=2)
    assert index.prune("wiki", 2) == 1  # wiki:3 was not seen in generation 2
    assert index.catalog.counts()["wiki"][0] == 2


def test_near_duplicates_collapse(index):
    quoted = "The merger with Globex closes in March; keep it confidential."
    index.apply([doc(20 + i, f"Re: update\n\n{quoted}", source="mail") for i in range(3)], generation=1)
    hits = ids(index, "Globex merger closes March", k=10, sources=("mail",))
    assert len(hits) == 1


def test_documents_from_one_template_are_each_a_result(index):
    """Tickets written from one form differ only in their number, floor and date: each is a
    different fault, and an agent asking for the badge reader faults must see every one."""
    form = (
        "Ticket {number}: the badge reader at the north entrance of floor {floor} stopped accepting "
        "cards on {date}. Facilities checked the power supply and the network cable, replaced the reader "
        "with a spare from the store room and confirmed that staff badges open the door again. The faulty "
        "unit goes back to the vendor under the maintenance contract; no further action is needed."
    )
    tickets = [("INC-4471", 3, "2 March 2026"), ("INC-4502", 5, "9 March 2026"), ("INC-4533", 2, "16 March 2026")]
    texts = [form.format(number=n, floor=f, date=d) for n, f, d in tickets]
    index.apply([doc(60 + i, text, source="ops") for i, text in enumerate(texts)], generation=1)
    got = ids(index, "badge reader stopped accepting cards ticket", k=5, sources=("ops",))
    assert sorted(got) == ["ops:60", "ops:61", "ops:62"]


def test_a_short_mail_and_a_bare_forward_of_it_are_one_result(index):
    """The two passages differ only in inlet's header block and the forward's attribution lines."""
    body = (
        "Our invoice INV-77310 was charged twice on the corporate card ending 4417. Please refund the "
        "duplicate charge of 1,250 EUR to the same card before the end of the month."
    )
    original = f"From: dana@customer.example\nTo: bob@example.com\nDate: 2026-12-06 18:12 UTC\n\n{body}"
    forward = (
        "From: bob@example.com\nTo: alice@example.com\nDate: 2026-12-07 08:00 UTC\n\n"
        "---------- Forwarded message ---------\nFrom: Dana Customer <dana@customer.example>\n"
        f"Date: Sun, Dec 6, 2026 at 6:12 PM\nSubject: Double charge\nTo: <bob@example.com>\n\n{body}"
    )
    mails = [
        doc(70, original, source="mail", source_type="mail_archive", title="Double charge"),
        doc(71, forward, source="mail", source_type="mail_archive", title="Fwd: Double charge", when=2025),
    ]
    index.apply(mails, generation=1)
    got = ids(index, "INV-77310 refund duplicate charge", k=5, sources=("mail",))
    assert len(got) == 1 and got[0] in ("mail:70", "mail:71")


def test_a_copy_through_another_source_collapses_but_a_later_reply_quoting_it_stays(index):
    body = " ".join(
        f"Section {n}: the Zanzibar pipeline capacity auction moves to week {n} and bids stay sealed."
        for n in range(1, 12)
    )
    outlook = "From: Louise Kitchen <louise.kitchen@example.com>\nTo: " + ", ".join(
        f"trader{n}@example.com" for n in range(30)
    )
    gmail = "From: louise.kitchen@example.com\nTo: all traders of the Zanzibar desk, every region, by name"
    copies = [
        doc(30, f"{outlook}\n\n{body}", source="outlook", title="Zanzibar auction"),
        doc(31, f"{gmail}\n\n{body}", source="gmail", title="Zanzibar auction"),
        doc(32, f"Agreed, see below.\n\n{body}", source="gmail", title="Re: Zanzibar auction", when=2025),
    ]
    assert copies[0].updated_at == copies[1].updated_at
    index.apply(copies, generation=1)
    got = ids(index, "Zanzibar auction", k=10, sources=("outlook", "gmail"))
    assert len({"outlook:30", "gmail:31"} & set(got)) == 1  # the same mail, once
    assert "gmail:32" in got  # a reply sent later is another document, even quoting it all


def test_copies_of_one_mail_collapse_by_message_id_even_when_their_passages_differ(index):
    """The same mail through Outlook and Gmail whose sources read its attachments differently: the
    passages the query matches share nothing, the Message-ID and the second say it is one mail."""
    mail = {"message_id": "<4471.1075855376722.JavaMail@thyme>"}
    copies = [
        doc(50, "Volumes were up on the Ouzel desk; see the attached curves.", source="outlook", metadata=mail),
        doc(51, "Trading memo: curves for the Ouzel desk are attached.", source="gmail", metadata=mail),
        doc(
            52,
            "Ouzel desk curves, another mail sent the same second.",
            source="gmail",
            metadata={"message_id": "<x@y>"},
        ),
    ]
    index.apply(copies, generation=1)
    got = ids(index, "Ouzel desk curves", k=10, sources=("outlook", "gmail"))
    assert len({"outlook:50", "gmail:51"} & set(got)) == 1  # the same mail, once
    assert "gmail:52" in got  # another mail of the same second stays


@pytest.fixture
def hashed(tmp_path, text_hash_embedder):
    """An empty index whose vectors are hashes: for what lexical search keeps or collapses."""
    with Index(IndexConfig(path=tmp_path / "hx"), embedder=text_hash_embedder) as ix:
        yield ix


def test_copies_tied_at_the_cut_come_back_by_chunk_id(hashed):
    """Copies of one text share one vector: the nearest `limit` of them are the same ones in every
    process (Chroma's own order among equal distances is not)."""
    copies = [doc(n, "Quarterly figures for the west desk are attached.", title="Figures") for n in range(10, 22)]
    hashed.apply(copies, generation=1)
    got = hashed.dense("west desk quarterly figures", Filters(), 4)
    assert [cid for cid, _ in got] == [f"wiki:{n}#0" for n in range(10, 14)]
    assert len({score for _, score in got}) == 1


def lexical_ids(index, query):
    hits, _ = search(index, SearchRequest(query=query, k=10, recency_half_life_days=0, mode="lexical"))
    return [h.doc_id for h in hits]


def sent_mail(doc_id: str, text: str, message_id: str) -> Document:
    """A mail sent 2000-03-13 13:31 UTC (Enron's times are to the minute)."""
    return Document(
        id=doc_id,
        source=doc_id.partition(":")[0],
        source_type="mail",
        title="Priority List",
        text=text,
        acl=ACL(public=True),
        updated_at=datetime(2000, 3, 13, 13, 31, tzinfo=timezone.utc),
        metadata={"message_id": message_id},
    )


ACCOUNTS = ["Compaq", "Avista", "Sempra", "Calpine", "Dynegy", "Reliant", "Mirant", "Duke"] * 3
PRIORITY_LIST = "\n\n".join(
    f"Item {n}: the west desk reviews the {name} account with the origination group before the quarter "
    f"closes, and the traders send their comments on the {name} positions to Ina."
    for n, name in enumerate(ACCOUNTS)
)


@pytest.mark.parametrize("other", ["gmail:2", "outlook:2"])
def test_copies_of_one_mail_collapse_when_their_matching_passages_share_nothing(hashed, other):
    """Phillip's Outlook copy forwards the mail with a note; the other copy (through Gmail, or in a
    second folder of the mailbox) carries the mail's attachment as text. Each has its own Message-ID
    (the Enron corpus keeps one mail in several folders), and the query matches the note in one and
    the attachment in the other: only the documents' whole texts say it is one mail."""
    forward = (
        "From: Phillip K Allen <phillip.allen@enron.com>\nTo: ina.rangel@enron.com\nDate: 2000-03-13 13:31 UTC\n\n"
        "Ina, please print the Wombat version for the offsite.\n\n"
        f"---------------------- Forwarded by Phillip K Allen/HOU/ECT ----------------------\n\n{PRIORITY_LIST}"
    )
    copy = (
        "From: phillip.allen@enron.com\nTo: ina.rangel@enron.com\nDate: 2000-03-13 13:31 UTC\n\n"
        f"{PRIORITY_LIST}\n\n## Attachment: list.xls\n\nWombat ranking of the accounts"
    )
    hashed.apply([sent_mail("outlook:1", forward, "<1.JavaMail@thyme>"), sent_mail(other, copy, "<2.JavaMail@thyme>")])
    matching = [chunk for chunk, _ in hashed.lexical("Wombat", Filters(), 10)]
    assert set(matching) == {"outlook:1#0", f"{other}#{hashed.catalog.stored([other])[other].chunks - 1}"}
    assert len(lexical_ids(hashed, "Wombat")) == 1  # the same mail, once


def test_mails_of_one_second_stay_apart_unless_one_repeats_the_other(hashed):
    """Different mails sent the same minute: two sharing a long disclaimer, two tickets of one form
    whose numbers differ, and two people's same short reply. Each is a result."""
    disclaimer = (
        "This e-mail is the property of Enron Corp. and/or its relevant affiliate and may contain "
        "confidential and privileged material for the sole use of the intended recipient(s). Any review, "
        "use, distribution or disclosure by others is strictly prohibited. If you are not the intended "
        "recipient (or authorized to receive for the recipient), please contact the sender or reply to "
        "Enron Corp. at enron.messaging.administration@enron.com and delete all copies of the message."
    )
    head = "From: {0}@enron.com\nTo: {1}@enron.com\nDate: 2000-03-13 13:31 UTC\n\n"
    form = (
        "Ticket {0}: the Kestrel badge reader at the north entrance of floor {1} stopped accepting cards. "
        "Facilities checked the power supply and the network cable, replaced the reader with a spare from "
        "the store room and confirmed that staff badges open the door again."
    )
    survey = (
        "Kestrel survey: before your mailbox moves we would like to know how you use your calendar, which "
        "folders you share with your assistant, how many messages you archive each month and whether you "
        "read mail on a handheld device. The answers decide the order in which the floors move."
    )
    migration = (
        "Kestrel migration: please print this now and keep it by your desk. Your mailbox moves over the "
        "weekend; on Monday open the new client from the desktop icon, sign in with your network password "
        "and call the help desk on extension 4357 if your folders are missing."
    )
    mails = [
        sent_mail("m:1", head.format("outlook.team", "all.houston") + f"{survey}\n\n{disclaimer}", "<1@x>"),
        sent_mail("m:2", head.format("outlook.team", "all.houston") + f"{migration}\n\n{disclaimer}", "<2@x>"),
        sent_mail("m:3", head.format("facilities", "ina.rangel") + form.format("INC-4471", 3), "<3@x>"),
        sent_mail("m:4", head.format("facilities", "ina.rangel") + form.format("INC-4502", 5), "<4@x>"),
        sent_mail("m:5", head.format("phillip.allen", "ina.rangel") + "Kestrel: thanks, will do.", "<5@x>"),
        sent_mail("m:6", head.format("john.arnold", "mike.grigsby") + "Kestrel: thanks, will do.", "<6@x>"),
    ]
    hashed.apply(mails)
    assert sorted(lexical_ids(hashed, "Kestrel")) == [f"m:{n}" for n in range(1, 7)]


def slack_message(doc_id: str, posted: datetime, line: str) -> Document:
    """A one-message Slack thread as the Slack connectors write it: `[... UTC] name: message`."""
    return Document(
        id=doc_id,
        source="slack",
        source_type="slack",
        title=f"#enrique: {line.split(': ', 1)[1][:40]}",
        text=f"[{posted:%Y-%m-%d %H:%M} UTC] {line}",
        acl=ACL(public=True),
        updated_at=posted,
    )


def test_a_chat_message_quoting_another_whole_is_one_result_but_a_reminder_on_two_days_is_two(hashed):
    """heroeshannibal quotes hamza's message hours later and adds a remark: the two lines' times and
    names are not facts of the message, so the quote collapses into one result. The same reminder
    posted on two days stays two."""
    said = (
        "Essentially what I'm getting from this is that SA is just a bad metaheuristic for us to try and "
        "apply to huge problem set and to effectively parallelize"
    )
    remind = "Reminder: the metaheuristic retro starts at four in the big room, bring one thing to keep and one to drop"
    hashed.apply(
        [
            slack_message("slack:1", datetime(2016, 3, 17, 10, 38, tzinfo=timezone.utc), f"hamza: {said}"),
            slack_message(
                "slack:2",
                datetime(2016, 3, 17, 15, 32, tzinfo=timezone.utc),
                f'heroeshannibal: >"{said}"\nso....what now then?',
            ),
            slack_message("slack:3", datetime(2016, 3, 17, 9, 0, tzinfo=timezone.utc), f"hamza: {remind}"),
            slack_message("slack:4", datetime(2016, 3, 24, 9, 0, tzinfo=timezone.utc), f"hamza: {remind}"),
        ]
    )
    got = lexical_ids(hashed, "metaheuristic")
    assert len({"slack:1", "slack:2"} & set(got)) == 1  # the quote, once
    assert {"slack:3", "slack:4"} <= set(got)


def test_result_times_are_to_the_millisecond(index):
    precise = doc(40, "The Kestrel runbook covers the nightly export.", title="Kestrel runbook")
    precise.updated_at = datetime(2024, 5, 1, 9, 30, 40, 123456, tzinfo=timezone.utc)
    index.apply([precise], generation=1)
    hits, _ = search(index, SearchRequest(query="Kestrel runbook", k=1, recency_half_life_days=0))
    assert hits[0].doc_id == "wiki:40" and hits[0].updated_at == "2024-05-01T09:30:40.123Z"


def test_a_second_process_cannot_open_the_same_index(index):
    with pytest.raises(IndexLockedError, match="in use by pid"):
        Index(IndexConfig(path=index.path), embedder=index.embedder)


def test_lexical_filter_falls_back_to_the_filtered_query_when_few_pass(index):
    from inlet.storage import Filters

    index.apply([doc(100 + i, "falcon falcon falcon quarterly falcon report", source="pub") for i in range(12)])
    index.apply(
        [doc(200, "Someone saw a falcon near the office once.", source="exec", acl=ACL(users=["ceo@example.com"]))]
    )
    assert chunks(index.lexical("falcon", Filters(sources=("exec",)), 2)) == ["exec:200#0"]
    assert chunks(index.lexical("falcon", Filters(principals=("u:ceo@example.com",)), 1)) == ["exec:200#0"]
    assert len(index.lexical("falcon", Filters(), 5)) == 5


def test_the_catalog_decides_what_the_filtered_dense_query_returns(index):
    """probe34c F2: a Chroma folder restored from a copy taken after the dump held a document's
    older, wider ACL; the filtered query (when few unfiltered neighbours pass) trusted it and served
    the text to a user the catalog no longer lets see it."""
    from inlet.index import vectors
    from inlet.storage import Filters

    secret = ACL(users=["ceo@example.com"])
    index.apply([doc(600 + i, f"Quarterly falcon budget line {i}.", source="fin", acl=secret) for i in range(12)])
    held = index.collection.get(ids=["fin:600#0"], include=["metadatas"])["metadatas"][0]
    index.collection.update(ids=["fin:600#0"], metadatas=[{**held, "acl": ["u:bob@example.com"]}])  # the older copy
    bob = Filters(principals=("u:bob@example.com",))
    query = index.embedder.encode_query("falcon budget")
    assert "fin:600#0" in chunks(vectors.query(index.collection, query, bob, 1))  # Chroma's copy says bob may
    assert index.dense("falcon budget", bob, 1) == []


def test_corpus_stopwords_are_dropped_while_rarer_terms_remain(index):
    from inlet.storage import Filters

    index.apply([doc(300 + i, f"Quarterly report number {i} for the board.", source="rep") for i in range(20)])
    index.apply([doc(400, "The Zanzibar memo.", source="rep")])
    assert index.catalog.selective_terms(["report", "zanzibar"]) == ["zanzibar"]
    assert index.catalog.selective_terms(["report", "quarterly", "board"]) != []
    assert chunks(index.lexical("zanzibar report", Filters(), 1)) == ["rep:400#0"]
    assert len(index.lexical("quarterly report", Filters(), 5)) == 5


def test_acl_and_filters_hold_for_document_ids_containing_hashes(index):
    """Filters read the document id out of chunk ids (`doc#n`), so ids with '#' must survive."""
    from inlet.storage import Filters

    secret = Document(
        id="wiki:Runbook#Failover#2",
        source="wiki",
        source_type="files",
        title="Failover",
        text="The failover drill for the Oslo datacenter runs on the first Monday.",
        acl=ACL(users=["sre@example.com"]),
        updated_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    index.apply([secret])
    for mode in ("dense", "lexical", "hybrid"):
        assert "wiki:Runbook#Failover#2" in ids(index, "Oslo failover drill", k=3, user="sre@example.com", mode=mode)
        assert "wiki:Runbook#Failover#2" not in ids(
            index, "Oslo failover drill", k=10, user="dev@example.com", mode=mode
        )
    chunk = "wiki:Runbook#Failover#2#0"
    assert index.catalog.passing([chunk], Filters(principals=("u:sre@example.com",))) == {chunk}
    assert index.catalog.passing([chunk], Filters(principals=("*",))) == set()
    assert index.catalog.passing(
        [chunk], Filters(sources=("wiki",), after=datetime(2023, 1, 1).timestamp(), principals=("u:sre@example.com",))
    ) == {chunk}
    assert index.catalog.passing([chunk], Filters(before=datetime(2023, 1, 1).timestamp())) == set()


def open_files(under: Path) -> int:
    """Descriptors this process holds on files under `under` (other tests' threads and sockets,
    which come and go under xdist, are not counted)."""
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            held += os.readlink(f"/proc/self/fd/{fd}").startswith(f"{under}/")
        except OSError:  # closed meanwhile
            pass
    return held


def test_closing_an_index_closes_its_chroma_files(tmp_path, embedder):
    """A daemon or API server that opens and closes indexes keeps no file of a closed one open
    (each held Chroma's SQLite database and HNSW files, a dozen descriptors, until the process ended)."""

    def open_and_close(n: int) -> None:
        with Index(IndexConfig(path=tmp_path / f"ix{n}"), embedder=embedder) as ix:
            ix.apply(CORPUS[:1], generation=1)

    open_and_close(0)  # Chroma's first use opens what it keeps for the process
    before = open_files(tmp_path)
    for n in range(1, 11):
        open_and_close(n)
    assert open_files(tmp_path) == before


def catalog_files(index: Index) -> int:
    """Descriptors this process holds on the index's catalog (the database, its WAL)."""
    names = {str(index.path / "catalog.db"), str(index.path / "catalog.db-wal")}
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            held += os.readlink(f"/proc/self/fd/{fd}") in names
        except OSError:  # closed meanwhile
            pass
    return held


def test_threads_that_come_and_go_leave_no_catalog_connection_behind(index):
    """A daemon's pipeline threads and the API's workers come and go: each once kept its own read
    connection (the catalog and its WAL open) until the process ended, and a soak ran out of files."""
    from inlet.storage.sqlite.catalog import IDLE_READERS

    def one_search(_: object = None) -> list[str]:
        return ids(index, "badge reader XJ-4471")

    one_search()
    before = catalog_files(index)
    for _ in range(30):  # one thread after another, each gone before the next: +60 files before
        thread = threading.Thread(target=one_search)
        thread.start()
        thread.join()
    assert catalog_files(index) <= before + 2
    for _ in range(4):  # new workers each round, twelve queries at once
        with ThreadPoolExecutor(max_workers=12) as pool:
            assert all(pool.map(one_search, range(48)))
    # the writer and the idle readers, and the descriptors of readers closed while others held a
    # lock, which SQLite keeps to reuse (a dozen at most here): not two per thread that ever ran
    assert catalog_files(index) <= 2 * (1 + IDLE_READERS) + 12


def test_a_chinese_paragraph_and_a_hex_dump_are_stored_in_chunks_within_the_budget(
    tmp_path, text_hash_embedder
) -> None:
    """Through the index with the model's own tokenizer: a 1,300-character Chinese paragraph and a
    20,000-character hex run are stored as chunks of at most `chunk_tokens`, and a name at the end
    of the paragraph is a keyword match of its chunk (it was one chunk of 1,301 tokens, unmatched)."""
    from inlet.config import IndexConfig
    from inlet.connectors.model import ACL, Document
    from inlet.index.store import Index
    from inlet.storage import Filters

    filler = (
        "本季度公司各部门继续推进数字化转型工作，财务部门完成了年度预算的编制，人力资源部门组织了多场培训活动。" * 25
    )
    texts = {
        "long": f"年度工作总结。{filler}特别说明：熊猫仓库的钥匙由李建国保管。",
        "trace": "Stack dump of the marmotqueue worker, raw frame: " + "9f3ac0de" * 2_500 + " end of dump",
    }
    docs = [
        Document(id=f"s:{k}", source="s", source_type="files", title=k, text=t, acl=ACL(public=True))
        for k, t in texts.items()
    ]
    with Index(IndexConfig(path=tmp_path / "index"), embedder=text_hash_embedder) as index:
        index.apply(docs, generation=1)
        stored = index.catalog._query("SELECT chunk_id, text FROM chunks ORDER BY doc_id, n")
        counts = text_hash_embedder.count_tokens([text for _, text in stored])
        assert max(counts) <= index.config.chunk_tokens and len(stored) > 20
        last = [cid for cid, text in stored if "李建国" in text]
        assert last and index.catalog.lexical("李建国", Filters(), 3)[0][0] in last
