"""The sandboxes tests start share nothing: each serves its own deep copy of the sample workspace
(tests/workspaces.py), with the data, ids and random state of a newly seeded one, so what one test
changes no other test sees."""

from __future__ import annotations

from inlet.sandbox import gmail, gmail_state
from inlet.sandbox.sample import sample_workspace
from inlet.sandbox.server import Sandbox
from tests.workspaces import FAST_GMAIL_QUOTA, sample

BADEER = "robert.badeer@enron.com"


def test_each_sandbox_serves_its_own_copy_of_the_sample() -> None:
    seeded = sample_workspace()
    with Sandbox() as one:
        assert set(gmail_state.mailbox(one.ws, BADEER).messages) == set(gmail_state.mailbox(seeded, BADEER).messages)
        assert one.ws.users.keys() == seeded.users.keys() and one.ws.rng.random() == seeded.rng.random()
        gmail.add_message(one.ws, BADEER, "Only here", "A message of one sandbox.")
        one.ws.add_user("only.here@example.com", "onlyhere")
        with Sandbox() as two:
            assert two.ws.lock is not one.ws.lock and gmail_state.state(two.ws) is not gmail_state.state(one.ws)
            assert set(gmail_state.mailbox(two.ws, BADEER).messages) == set(
                gmail_state.mailbox(seeded, BADEER).messages
            )
            assert two.ws.user_by_email("only.here@example.com") is None
    assert gmail_state.state(sample()).units_per_second == FAST_GMAIL_QUOTA
