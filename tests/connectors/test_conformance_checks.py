"""The conformance suite's checks catch a plug-in's common bugs, each with a message naming the ids.

A small ticket connector (`Desk`) over an in-memory service, with one deliberate bug at a time:
each check must fail on its bug with a message a plug-in author can act on (pytest does not
rewrite the asserts of the installed `inlet.connectors.testing`, so a bare `AssertionError` would
say nothing), and the correct connector passes every check.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from inlet.connectors import ACL, Checkpoint, Connector, Deletion, SourceConfig
from inlet.connectors.model import Item
from inlet.connectors.testing import (
    Case,
    Change,
    Runs,
    check_an_edit_and_a_deletion_reach_an_incremental_pass,
    check_an_incremental_checkpoint_keeps_its_position,
    check_checkpoints_are_json,
    check_credentials,
    check_every_id_is_the_sources,
    check_full_pass_is_well_formed,
    check_full_passes_are_deterministic,
    check_ids_are_unique_within_a_pass,
    check_live_ids_match_a_full_pass,
    check_resume_loses_nothing,
    check_resuming_a_full_pass_after_a_deletion_loses_nothing,
    check_resuming_an_incremental_pass_loses_no_change,
    check_since_limits_a_backfill,
    check_skipped_items_have_ids,
    check_unchanged_source_yields_no_changed_content,
)


class DeskConfig(SourceConfig):
    token_env: str = "DESK_TOKEN"


class Desk(Connector[DeskConfig]):
    """Tickets `T-1`...: one document each, a checkpoint after each, deletions from the checkpoint's
    memory. `bugs` switches on one mistake."""

    type = "desk"
    Config = DeskConfig
    tickets: dict[str, str] = {}
    bugs: frozenset[str] = frozenset()
    loads = 0

    def check(self) -> None:
        if self.secret("token_env") != "good":  # the page's recipe: raise_for_status on a refused token
            httpx.Response(401, request=httpx.Request("POST", "https://desk.test/oauth/token")).raise_for_status()

    def load(self, checkpoint: dict[str, Any] | None, *, since: datetime | None = None) -> Iterator[Item]:
        Desk.loads += 1
        bugs = self.bugs
        seen: dict[str, str] = dict((checkpoint or {}).get("seen", {}))
        if checkpoint is not None and "ahead" in bugs:  # the service's state saved before reading its changes
            yield Checkpoint(state={"seen": dict(self.tickets)})
        for native in sorted(set(seen) - set(self.tickets)):
            del seen[native]
            yield Deletion(id=native if "raw_delete" in bugs else self.doc_id(native))
        if checkpoint is None and "delete_in_full" in bugs:
            yield Deletion(id=self.doc_id("T-3"))  # an unreadable ticket "deleted" instead of skipped
        for native, text in sorted(self.tickets.items()):
            stamp = datetime(2024, 1, int(native[2:]), tzinfo=timezone.utc)
            if (seen.get(native) == text and "reread" not in bugs) or (since is not None and stamp < since):
                continue
            if "nondeterministic" in bugs:
                text += f" (read {Desk.loads})"
            doc = self.document(
                native,
                title=native,
                text=text,
                url=f"https://desk.test/{native}",
                updated_at=stamp,
                acl=ACL(users=["eng", "all-staff"]) if "raw_groups" in bugs else ACL(public=True),
            )
            yield doc
            if "twice" in bugs and native == "T-2":
                yield doc
            seen[native] = self.tickets[native]
            state: dict[str, Any] = {"seen": dict(seen)}
            later = [n for n in sorted(self.tickets) if n > native]
            if "checkpoint_early" in bugs and later:  # the next ticket counted as done before it is yielded
                state["seen"][later[0]] = self.tickets[later[0]]
            if "datetime" in bugs:
                state["at"] = stamp
            yield Checkpoint(state=state)
        if "foreign" in bugs:
            yield Deletion(id="handbook:llama.txt")
        yield Checkpoint(state=checkpoint if checkpoint is not None and "regress" in bugs else {"seen": seen})

    def live_ids(self) -> Iterator[str]:
        return (self.doc_id(n) for n in self.tickets)


class DeskCase(Case):
    """The case builds the connector directly (the checks under test, not the registry)."""

    def connector(self, spoiled: bool = False) -> Connector:
        env = self.bad_env if spoiled and self.bad_env else self.env
        return Desk(DeskConfig(name=self.name, type="desk"), env)


def desk(*bugs: str) -> DeskCase:
    Desk.tickets = {f"T-{n}": f"Ticket {n}: the printer on floor {n} is jammed." for n in range(1, 7)}
    Desk.bugs = frozenset(bugs)

    def mutate() -> Change:
        Desk.tickets["T-2"] = "Ticket 2: fixed, the printer works again."
        del Desk.tickets["T-5"]
        return Change(edited="helpdesk:T-2", deleted="helpdesk:T-5")

    return DeskCase(
        {"name": "helpdesk", "type": "desk"},
        {"DESK_TOKEN": "good"},
        bad_env={"DESK_TOKEN": "bad"},
        api=True,
        mutate=mutate,
    )


def fails(check: Any, runs: Any) -> str:
    with pytest.raises(AssertionError) as caught:
        check(runs)
    return str(caught.value)


def test_the_correct_connector_passes_every_check() -> None:
    case = desk()
    check_credentials(case)
    runs = Runs.of(case)
    for check in (
        check_full_pass_is_well_formed,
        check_every_id_is_the_sources,
        check_ids_are_unique_within_a_pass,
        check_checkpoints_are_json,
        check_skipped_items_have_ids,
        check_unchanged_source_yields_no_changed_content,
        check_full_passes_are_deterministic,
        check_resume_loses_nothing,
        check_resuming_an_incremental_pass_loses_no_change,
        check_since_limits_a_backfill,
    ):
        check(runs)
    assert check_live_ids_match_a_full_pass(runs)
    assert check_an_edit_and_a_deletion_reach_an_incremental_pass(runs)
    assert check_resuming_an_incremental_pass_loses_no_change(runs)
    assert check_an_incremental_checkpoint_keeps_its_position(runs)
    assert check_resuming_a_full_pass_after_a_deletion_loses_nothing(runs)


class Paged(Desk):
    """`Desk` listing by position, its checkpoint the number of tickets read (a page number or offset)."""

    def load(self, checkpoint: dict[str, Any] | None, *, since: datetime | None = None) -> Iterator[Item]:
        listing = sorted(self.tickets.items())
        start = int((checkpoint or {}).get("offset", 0))
        for n, (native, text) in enumerate(listing[start:], start + 1):
            yield self.document(
                native, title=native, text=text, url=f"https://desk.test/{native}", acl=ACL(public=True)
            )
            yield Checkpoint(state={"offset": n})
        yield Checkpoint(state={"offset": len(listing)})


class EarlyDeletion(DeskCase):
    """A case whose change deletes the first ticket, listed before any mid-pass checkpoint."""

    paged = False

    def connector(self, spoiled: bool = False) -> Connector:
        return (Paged if self.paged else Desk)(DeskConfig(name=self.name, type="desk"), self.env)


@pytest.mark.parametrize("paged", [False, True], ids=["last-id", "offset"])
def test_an_offset_checkpoint_losing_items_after_a_deletion_is_named(paged: bool) -> None:
    """A backfill killed at its mid-pass checkpoint, an early item deleted meanwhile, the backfill
    resumed: a checkpoint of what was read (Desk's) loses nothing; an offset skips the item that
    moved onto the position already read, and the check names it and says what to checkpoint."""
    case = desk()

    def delete_first() -> Change:
        Desk.tickets["T-2"] = "Ticket 2: fixed, the printer works again."
        del Desk.tickets["T-1"]
        return Change(edited="helpdesk:T-2", deleted="helpdesk:T-1")

    early = EarlyDeletion(case.raw, case.env, bad_env=case.bad_env, api=True, mutate=delete_first)
    early.paged = paged
    runs = Runs.of(early)
    if not paged:
        assert check_resuming_a_full_pass_after_a_deletion_loses_nothing(runs)
        return
    message = fails(check_resuming_a_full_pass_after_a_deletion_loses_nothing, runs)
    assert "after Case.mutate deleted 'helpdesk:T-1' loses ['helpdesk:T-2']" in message, message
    assert "a page number or an offset is no checkpoint" in message


def test_the_offset_check_resumes_after_the_deleted_item_wherever_the_pass_lists_it() -> None:
    """review33 #11: the check resumed from the pass's middle checkpoint, so an offset connector
    passed whenever the deleted item came after it (the default case deletes T-5 of T-1..T-6). It
    resumes from the first checkpoint after the deleted item; with none before the pass's last
    (the last item deleted) it says nothing was checked."""
    case = desk()
    paged = EarlyDeletion(case.raw, case.env, bad_env=case.bad_env, api=True, mutate=case.mutate)
    paged.paged = True
    message = fails(check_resuming_a_full_pass_after_a_deletion_loses_nothing, Runs.of(paged))
    assert "after Case.mutate deleted 'helpdesk:T-5' loses ['helpdesk:T-6']" in message, message


def test_check_runs_inside_the_engines_http_error_mapping() -> None:
    """`raise_for_status()` on a refused token in `check()` is a CredentialsError naming the source,
    as it is for the engine's `load`; the suite accepts it."""
    check_credentials(desk())


def test_a_deletion_without_doc_id_is_named_by_the_incremental_check() -> None:
    message = fails(check_an_edit_and_a_deletion_reach_an_incremental_pass, Runs.of(desk("raw_delete")))
    assert "deleted 'helpdesk:T-5'" in message and "no Deletion of it" in message and "'T-5'" in message
    message = fails(check_every_id_is_the_sources, Runs.of(desk("raw_delete")))
    assert "the incremental pass after Case.mutate yields ids not of" in message and "Deletion('T-5')" in message


def test_an_id_of_another_source_is_named() -> None:
    message = fails(check_every_id_is_the_sources, Runs.of(desk("foreign")))
    assert "Deletion('handbook:llama.txt')" in message and "not of source 'helpdesk'" in message


def test_a_deletion_in_a_full_pass_from_scratch_fails_naming_it() -> None:
    message = fails(check_full_pass_is_well_formed, Runs.of(desk("delete_in_full")))
    assert (
        "the first full pass, from no checkpoint, yields Deletions of ['helpdesk:T-3']" in message
        and "failed Skipped" in message
    )


def test_duplicates_lost_ids_and_differences_are_named() -> None:
    assert "more than once: ['helpdesk:T-2']" in fails(check_ids_are_unique_within_a_pass, Runs.of(desk("twice")))
    message = fails(check_resume_loses_nothing, Runs.of(desk("checkpoint_early")))
    assert "loses ['helpdesk:T-5']" in message, message
    message = fails(check_full_passes_are_deterministic, Runs.of(desk("nondeterministic")))
    assert "different title or text for ['helpdesk:T-1', 'helpdesk:T-2'" in message, message


def test_a_checkpoint_that_is_not_json_fails_its_own_check_only() -> None:
    runs = Runs.of(desk("datetime"))  # the passes are read all the same
    message = fails(check_checkpoints_are_json, runs)
    assert "checkpoint 1 of the first full pass (item 1)" in message and "state['at'] is a datetime" in message
    check_resume_loses_nothing(runs)
    check_unchanged_source_yields_no_changed_content(runs)


def test_an_incremental_checkpoint_ahead_of_what_was_read_is_named() -> None:
    """A change feed's position saved before the changes it covers: a run failing after it loses
    them for good, though every incremental pass run to its end looks right."""
    runs = Runs.of(desk("ahead"))
    check_an_edit_and_a_deletion_reach_an_incremental_pass(runs)  # whole passes cannot tell
    check_resume_loses_nothing(runs)
    message = fails(check_resuming_an_incremental_pass_loses_no_change, runs)
    assert "from its checkpoint at item 0 loses the edit of 'helpdesk:T-2' and the deletion of 'helpdesk:T-5'" in (
        message
    ), message


def test_an_incremental_checkpoint_that_never_advances_is_named() -> None:
    """A final checkpoint kept where the pass started: every sync re-reads the same changes."""
    runs = Runs.of(desk("regress"))
    check_an_edit_and_a_deletion_reach_an_incremental_pass(runs)
    check_unchanged_source_yields_no_changed_content(runs)
    message = fails(check_an_incremental_checkpoint_keeps_its_position, runs)
    assert "yields the Deletion of 'helpdesk:T-5' again" in message and "does not keep the position" in message


def test_a_connector_that_rereads_everything_may_yield_the_edit_again() -> None:
    """Re-yielding every document on every pass is slow, not wrong: the edit coming again is then no
    sign of a checkpoint that stays behind."""
    runs = Runs.of(desk("reread"))
    assert check_an_incremental_checkpoint_keeps_its_position(runs)
    assert runs.again is not None and "helpdesk:T-2" in {d.id for d in runs.again.docs}


def test_a_group_name_in_acl_users_is_named_with_its_document() -> None:
    """`ACL.users` holds addresses; a group's name there (the group not expanded to its members)
    lets no member find the item, while the run looks fine."""
    message = fails(check_full_pass_is_well_formed, Runs.of(desk("raw_groups")))
    assert "'all-staff' in helpdesk:T-1's ACL users is not an e-mail address: expand groups" in message, message
