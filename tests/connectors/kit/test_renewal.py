"""The kit's renewal loop, on an injected clock: renewed at a third of the lifetime, failures backed
off, replacements for what cannot be extended, and removal bounded on shutdown."""

from __future__ import annotations

import itertools
import logging
import threading

import pytest

from inlet.connectors.kit import Gone, Renewals, RetryPolicy, Subscription
from inlet.errors import InletError, RetriableError


class Service:
    """A subscription service: ids handed out, calls recorded, failures on demand."""

    def __init__(self, clock: list[float], lifetime: float) -> None:
        self.clock, self.lifetime = clock, lifetime
        self.calls: list[tuple[str, str | None]] = []
        self.fail = 0
        self.error: type[InletError] = RetriableError
        self._ids = itertools.count(1)

    def _maybe_fail(self) -> None:
        if self.fail:
            self.fail -= 1
            raise self.error("service unavailable")

    def create(self, sub: Subscription) -> None:
        self._maybe_fail()
        sub.id, sub.expires = f"s{next(self._ids)}", self.clock[0] + self.lifetime
        sub.data["resource"] = f"r-{sub.id}"  # what the service needs to remove it later
        self.calls.append(("create", sub.id))

    def renew(self, sub: Subscription) -> None:
        self._maybe_fail()
        sub.expires = self.clock[0] + self.lifetime
        self.calls.append(("renew", sub.id))

    def remove(self, sub: Subscription) -> None:
        assert sub.data["resource"] == f"r-{sub.id}", "a removal gets the data of the subscription it removes"
        self.calls.append(("remove", sub.id))


def renewals(service: Service, clock: list[float], extendable: bool = True) -> Renewals:
    return Renewals(
        source="mail",
        what="subscription",
        lifetime=service.lifetime,
        create=service.create,
        renew=service.renew if extendable else None,
        remove=service.remove,
        clock=lambda: clock[0],
    )


def test_created_then_renewed_once_a_third_of_the_lifetime_is_left() -> None:
    clock = [1000.0]
    service = Service(clock, lifetime=300.0)
    subs = renewals(service, clock)
    subs.add("inbox", mailbox="a@x")
    subs.maintain()
    assert service.calls == [("create", "s1")] and subs.live
    clock[0] += 199.0  # 101 s left: more than a third
    subs.maintain()
    assert service.calls == [("create", "s1")]
    clock[0] += 2.0  # 99 s left: less than a third
    subs.maintain()
    assert service.calls[-1] == ("renew", "s1") and subs.subs["inbox"].expires == clock[0] + 300
    subs.subs["inbox"].renew_now = True  # the service asked (reauthorizationRequired)
    subs.maintain()
    assert service.calls[-1] == ("renew", "s1") and len(service.calls) == 3 and not subs.subs["inbox"].renew_now


def test_a_failure_is_backed_off_and_not_live_until_it_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    service = Service(clock, lifetime=600.0)
    subs = renewals(service, clock)
    subs.advice = " (is the hook served?)"
    subs.add("inbox")
    service.fail, service.error = 2, InletError  # a refusal: the advice says what to check
    with caplog.at_level(logging.WARNING, logger="inlet.connectors.kit.renewal"):
        subs.maintain()
    assert not subs.live and service.calls == []
    assert [r.getMessage() for r in caplog.records] == [
        "source 'mail': subscription inbox: service unavailable (is the hook served?); next try in 5s"
    ]
    assert subs.reason == "subscription inbox: service unavailable"  # for `inlet status`
    clock[0] += 4.9  # first back-off: 5 s
    subs.maintain()
    assert service.fail == 1  # not tried yet
    clock[0] += 0.2
    subs.maintain()
    assert service.fail == 0 and not subs.live  # tried, failed again: next in 10 s
    clock[0] += 10.0
    subs.maintain()
    assert subs.live and service.calls == [("create", "s1")] and subs.reason == ""


def test_what_cannot_be_extended_is_replaced_before_the_old_one_is_removed() -> None:
    clock = [0.0]
    service = Service(clock, lifetime=90.0)
    subs = renewals(service, clock, extendable=False)
    subs.add("changes")
    subs.maintain()
    clock[0] += 61.0
    subs.maintain()
    assert service.calls == [("create", "s1"), ("create", "s2"), ("remove", "s1")]
    assert subs.subs["changes"].id == "s2" and subs.live
    clock[0] += 200.0  # expired unnoticed (a sleeping laptop): replaced at the next round
    subs.maintain()
    assert subs.live and subs.subs["changes"].id == "s3" and service.calls[-1] == ("remove", "s2")


def test_a_shorter_lifetime_than_asked_is_renewed_by_what_was_granted_not_in_a_loop() -> None:
    clock = [0.0]
    service = Service(clock, lifetime=7 * 86400.0)  # Drive grants at most 7 days
    subs = Renewals(
        source="drive",
        what="push channel",
        lifetime=30 * 86400.0,  # a month asked
        create=service.create,
        remove=service.remove,
        clock=lambda: clock[0],
    )
    subs.add("changes")
    for _ in range(5):
        subs.maintain()
    assert service.calls == [("create", "s1")]  # not replaced over and over
    clock[0] += 5 * 86400.0  # two of the seven days left: less than a third of what was granted
    subs.maintain()
    assert service.calls[1:] == [("create", "s2"), ("remove", "s1")]


def test_stop_removes_all_within_the_time_bound_whatever_the_service_does() -> None:
    clock = [0.0]
    service = Service(clock, lifetime=600.0)
    release = threading.Event()

    def hang(sub: Subscription) -> None:
        service.calls.append(("remove", sub.id))
        if sub.key == "stuck":
            release.wait()  # a service that never answers
        if sub.key == "refused":
            raise InletError("403")

    subs = Renewals(
        source="mail",
        what="subscription",
        lifetime=600.0,
        create=service.create,
        renew=service.renew,
        remove=hang,
        clock=lambda: clock[0],
        remove_timeout=0.3,
    )
    for key in ("a", "stuck", "refused"):
        subs.add(key)
    subs.maintain()
    subs.stop()  # returns although one removal never answers
    release.set()
    assert sorted(service.calls[3:]) == [("remove", "s1"), ("remove", "s2"), ("remove", "s3")]
    assert not subs.live and all(sub.id is None for sub in subs.subs.values())


def test_a_throttled_call_is_tried_once_and_not_again_before_its_retry_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A subscription call the service throttles (429, Retry-After: 30) is not waited out in line (the
    thread keeps every other subscription alive): it fails at once into the back-off, whose next try
    is no earlier than the Retry-After; the advice about the hook is not given for a throttle."""
    clock = [0.0]
    service = Service(clock, lifetime=600.0)
    slept: list[float] = []
    policy = RetryPolicy(sleep=slept.append, jitter=0.0)
    throttled = [3]

    def create(sub: Subscription) -> None:  # as the retrying transport under a Graph call
        attempts = policy.start("mail", "POST /subscriptions")
        while throttled[0]:
            throttled[0] -= 1
            if not attempts.retry("HTTP 429", 30.0, throttled=True):
                raise RetriableError("Graph answered 429", retry_after=30.0)
        service.create(sub)

    subs = renewals(service, clock)
    subs._create = create
    subs.advice = " (is the hook served?)"
    subs.add("inbox")
    with caplog.at_level(logging.WARNING, logger="inlet.connectors.kit.renewal"):
        subs.maintain()
    assert slept == [] and throttled == [2] and not subs.live
    assert "429" in subs.reason and "hook served" not in caplog.text and "next try in 30s" in caplog.text
    clock[0] += 29.0  # the back-off alone would try again after 5 s
    subs.maintain()
    assert throttled == [2]
    throttled[0] = 0
    clock[0] += 1.0
    subs.maintain()
    assert subs.live and service.calls == [("create", "s1")]


def test_a_subscription_made_where_none_was_held_asks_for_a_catch_up() -> None:
    """The service notifies only changes made after a subscription exists: each one created where none
    was held (the first, one found gone at renewal, one that lapsed) calls `missed`; a renewal, or a
    replacement made while the old one still listens, does not."""
    clock = [0.0]
    service = Service(clock, lifetime=90.0)
    missed: list[str | None] = []
    gone = [False]

    def renew(sub: Subscription) -> None:
        if gone[0]:
            gone[0] = False
            raise Gone("404 ResourceNotFound")
        service.renew(sub)

    subs = Renewals(
        source="mail",
        what="subscription",
        lifetime=90.0,
        create=service.create,
        renew=renew,
        remove=service.remove,
        clock=lambda: clock[0],
        missed=lambda sub: missed.append(sub.id),
    )
    subs.add("inbox")
    subs.maintain()
    assert missed == ["s1"]
    clock[0] += 61.0
    subs.maintain()
    assert missed == ["s1"] and service.calls[-1] == ("renew", "s1")
    gone[0] = True
    clock[0] += 61.0
    subs.maintain()
    assert missed == ["s1", "s2"] and subs.live
    replaced = renewals(service, clock, extendable=False)
    replaced._missed = lambda sub: missed.append(sub.id)
    replaced.add("changes")
    replaced.maintain()
    clock[0] += 61.0
    replaced.maintain()  # the old one listened until the new one was made: no gap
    assert missed == ["s1", "s2", "s3"] and replaced.subs["changes"].id == "s4"
    clock[0] += 200.0  # lapsed unnoticed (a sleeping laptop)
    replaced.maintain()
    assert missed == ["s1", "s2", "s3", "s5"]


def test_a_failing_subscription_is_named_by_its_label_else_its_whole_key(caplog: pytest.LogCaptureFixture) -> None:
    """Every Teams channel id ends in `@thread.tacv2`: a failure names the channel by the label its
    connector gave (its team and name), and one without a label by its whole key, never a tail."""
    clock = [0.0]
    service = Service(clock, lifetime=600.0)
    service.error = InletError
    subs = renewals(service, clock)
    subs.add("19:gen@thread.tacv2", label="Engineering/General")
    service.fail = 1
    with caplog.at_level(logging.WARNING):
        subs.maintain()
    assert subs.reason == "subscription Engineering/General: service unavailable"
    assert "subscription Engineering/General: service unavailable" in caplog.text
    subs.add("19:gen@thread.tacv2")  # added again without a label (a checkpoint followed): it keeps its own
    assert subs.subs["19:gen@thread.tacv2"].label == "Engineering/General"
    other = renewals(service, clock)
    other.add("19:b8f0c2d1e5a94f7c@thread.tacv2")
    service.fail = 1
    other.maintain()
    assert other.reason == "subscription 19:b8f0c2d1e5a94f7c@thread.tacv2: service unavailable"


def test_a_challenged_subscription_is_down_until_renewed_then_caught_up() -> None:
    """Graph's `reauthorizationRequired`: delivery may pause until the subscription is renewed, and
    what changed meanwhile is never notified. Until a renewal succeeds the subscription is not live,
    saying why (also while the renewal keeps failing); the renewal that ends the pause asks for the
    catch-up a new subscription gets; a plain renewal after it does not."""
    clock = [0.0]
    service = Service(clock, lifetime=600.0)
    missed: list[str | None] = []
    subs = renewals(service, clock)
    subs._missed = lambda sub: missed.append(sub.id)
    sub = subs.add("inbox", label="a@x/Inbox")
    subs.maintain()
    assert subs.live and missed == ["s1"]
    subs.challenge(sub, "the service asked to reauthorize it")
    service.fail, service.error = 2, InletError  # the renewal refused, twice
    subs.maintain()
    assert not subs.live and missed == ["s1"]
    assert (
        subs.reason
        == "subscription a@x/Inbox: the service asked to reauthorize it; renewing it failed: service unavailable"
    )
    clock[0] += 5.0
    subs.maintain()
    assert not subs.live and "reauthorize" in subs.reason  # still refused: still down, saying why
    clock[0] += 10.0
    subs.maintain()
    assert subs.live and subs.reason == "" and missed == ["s1", "s1"]  # renewed: one catch-up
    assert service.calls == [("create", "s1"), ("renew", "s1")]
    clock[0] += 500.0
    subs.maintain()
    assert service.calls[-1] == ("renew", "s1") and missed == ["s1", "s1"]  # a plain renewal: no gap
