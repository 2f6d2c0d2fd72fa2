"""The kit's refusals: a run that read none of its targets and was refused one fails, naming them."""

from __future__ import annotations

import pytest

from inlet.connectors.kit import Refusals
from inlet.errors import AccessRefusedError


def test_a_run_refused_everything_fails_naming_the_first_targets_and_counting_the_rest() -> None:
    refusals = Refusals("tm", "channel", "grant ChannelMessage.Read.All")
    for n in range(30):
        refusals.skip(f"c{n}", f"channel Eng/c{n}: the app may not read it (403)", refused=True)
    with pytest.raises(AccessRefusedError) as caught:
        refusals.check()
    message = str(caught.value)
    assert message.startswith("source 'tm': no channel it is configured to read could be read (channel Eng/c0: ")
    assert "Eng/c2:" in message and "Eng/c3:" not in message
    assert "and 27 more, each a skip `inlet status tm` lists" in message
    assert message.endswith("nothing was read and what was indexed is kept: grant ChannelMessage.Read.All")


def test_one_target_read_or_none_refused_leaves_the_run_to_its_skips() -> None:
    refused = Refusals("mf", "drive", "")
    refused.skip("d1", "drive 'd1': the app may not read it (403)", refused=True)
    refused.readable("d2")
    refused.check()  # one drive read: the refused one is a failed skip, the run `partial`
    missing = Refusals("mf", "drive", "")
    missing.skip("d1", "drive 'd1': not found (404)", refused=False)
    missing.check()  # not found is no refusal: nothing to grant
