"""Near-duplicate passages: the same message text with the same facts, not one template's fill-ins."""

from inlet.connectors.model import ACL
from inlet.connectors.slack_render import ChannelInfo, Directory, Person, thread_doc
from inlet.index.near_duplicates import (
    DOCUMENT_CHARS,
    document_marks,
    marks,
    message_text,
    near_duplicates,
    same_document,
)


def same(a: str, b: str) -> bool:
    return near_duplicates(marks(a), marks(b))


def report(week: int, date: str, received: int, shipped: int) -> str:
    return (
        f"Weekly warehouse report, week {week} ({date})\n\nSite: Rotterdam distribution centre. Prepared by the "
        f"logistics operations team for the regional board. Inbound pallets received: {received}. Outbound "
        f"pallets shipped: {shipped}. Dock utilisation stayed within the agreed band and no safety incidents were "
        "recorded on the loading bays. Forklift maintenance followed the quarterly plan and the cold-store "
        "temperature logs were reviewed and signed off by the site manager."
    )


BODY = (
    "Our invoice INV-77310 was charged twice on the corporate card ending 4417. Please refund the duplicate "
    "charge of 1,250 EUR to the same card before the end of the month."
)
ORIGINAL = f"From: dana@customer.example\nTo: bob@example.com\nDate: 2026-12-06 18:12 UTC\n\n{BODY}"
FORWARD = (
    "From: bob@example.com\nTo: alice@example.com\nDate: 2026-12-07 08:00 UTC\n\n"
    "---------- Forwarded message ---------\nFrom: Dana Customer <dana@customer.example>\n"
    "Date: Sun, Dec 6, 2026 at 6:12 PM\nSubject: Double charge\nTo: <bob@example.com>\n\n" + BODY
)


def test_reports_from_one_template_with_other_figures_are_different_documents():
    week14, week15 = report(14, "6 April 2026", 4120, 3980), report(15, "13 April 2026", 3870, 4210)
    assert not same(week14, week15)
    assert not same(week14, report(14, "6 April 2026", 4120, 3981))  # one figure differs
    assert not same(report(14, "6 April 2026", 1, 2), report(14, "6 May 2026", 1, 2))  # the month
    assert same(week14, report(14, "6 April 2026", 4120, 3980))


def test_a_short_mail_and_a_bare_forward_of_it_are_one_text():
    assert message_text(FORWARD).strip() == BODY
    assert same(ORIGINAL, FORWARD)


def test_a_reply_quoting_a_mail_under_an_original_message_block_repeats_it():
    reply = (
        "From: bob@example.com\nTo: dana@customer.example\nDate: 2026-12-07 09:30 UTC\n\nDone.\n\n"
        "-----Original Message-----\nFrom: Dana Customer\nSent: Sunday, December 06, 2026 6:12 PM\n"
        "To: Bob\nSubject: Double charge\n\n" + BODY
    )
    assert same(reply, ORIGINAL)


def test_wrapped_markers_and_folded_headers_are_left_out():
    text = (
        "From: phillip.allen@enron.com\nTo: paula.harris@enron.com,\n  faith.killen@enron.com\n"
        "Date: 2000-11-16 14:51 UTC\n\n---------------------- Forwarded by Phillip K Allen/HOU/ECT on 11/16/2000\n"
        "02:51 PM ---------------------------\nTo: Faith Killen/HOU/ECT@ECT\ncc:\nSubject: Re: West Gas 2001 Plan\n\n"
        "Faith, the plan is attached.\n\n"
        "On Mon, Nov 13, 2000 at 9:02 AM Faith Killen <\nfaith.killen@enron.com> wrote:\n"
        "> Please send the plan."
    )
    assert message_text(text).split() == [
        "Faith,",
        "the",
        "plan",
        "is",
        "attached.",
        ">",
        "Please",
        "send",
        "the",
        "plan.",
    ]


def test_words_only_one_side_has_are_additions_not_differences():
    """A reply's own line above the quote, or the end a chunk boundary cut off, holds facts the other
    passage lacks without contradicting it."""
    assert same(f"Refund booked on 7 December as ticket 5521.\n\n> {BODY}", BODY)
    assert same(BODY, BODY.rsplit(" 1,250", 1)[0])


def test_the_same_short_reply_from_two_people_is_two_documents():
    thanks = "Thanks, will do."
    first = f"From: bob@example.com\nTo: dana@customer.example\nDate: 2026-12-07 09:30 UTC\n\n{thanks}"
    second = f"From: carol@example.com\nTo: erin@example.com\nDate: 2026-11-02 16:05 UTC\n\n{thanks}"
    assert not same(first, second)
    assert same(first, first)


def test_the_same_mail_sent_on_other_days_is_another_mail_but_a_copy_of_it_is_not():
    """A weekly reminder sent on two Mondays is two mails; the same mail read through another source
    (its header written another way), or sent again that day to another list, is one."""
    reminder = (
        "Reminder: the timesheet for this week is due on Friday at noon. Please submit it in the HR portal "
        "and ask your manager to approve it before the payroll run."
    )
    monday = f"From: hr@example.com\nTo: staff@example.com\nDate: 2026-11-30 08:00 UTC\n\n{reminder}"
    next_monday = f"From: hr@example.com\nTo: staff@example.com\nDate: 2026-12-07 08:00 UTC\n\n{reminder}"
    copy = f"From: HR <hr@example.com>\nTo: All staff <staff@example.com>\nDate: 2026-11-30 08:00 UTC\n\n{reminder}"
    again = f"From: hr@example.com\nTo: contractors@example.com\nDate: 2026-11-30 08:03 UTC\n\n{reminder}"
    assert not same(monday, next_monday)
    assert same(monday, copy)
    assert same(monday, again)  # sent again minutes later, to another list
    attached = f"From: bob@example.com\nDate: 2026-12-08 10:00 UTC\n\n{monday}"  # a forward as attachment
    assert same(attached, monday)
    assert same(next_monday, f"Date: 2026-12-07 09:00 UTC\n\n---------- Forwarded message ---------\n{next_monday}")


def test_whole_documents_are_compared_on_their_head_cut_where_a_word_ends():
    """A long report through two sources whose headers differ in length: what lies past
    `DOCUMENT_CHARS` is not read, and the cut falls where a word ends, not inside "4120"."""
    page = report(14, "2 April", 4120, 3980) + "\n\n"
    pages = page * (DOCUMENT_CHARS // len(page) + 2)
    outlook = f"From: Logistics <logistics@example.com>\nDate: 2026-04-02 08:00 UTC\n\n{pages}"
    gmail = f"From: logistics@example.com\nDate: 2026-04-02 08:00 UTC\n\n{pages}"
    assert same_document(document_marks(outlook), document_marks(gmail))
    assert same_document(document_marks(outlook), document_marks(gmail + report(15, "9 April", 3870, 4011)))
    assert len(document_marks(outlook).words) < len(marks(outlook).words)
    assert not same_document(document_marks(outlook), document_marks(outlook.replace("4120", "4121")))


def test_whole_documents_differ_in_a_fact_but_not_in_what_one_adds():
    """One mail through Outlook (forwarded with a dated note) and Gmail (its attachment read as
    text) is one document; two weekly reports of one template, or the same table with one figure
    changed, are two."""
    body = "\n\n".join(report(14, "2 April", 4120 + n, 3980) for n in range(0, 40, 10))
    forward = f"Ina, please print this for the 14 April offsite.\n\n-----Original Message-----\n{body}"
    attached = f"{body}\n\n## Attachment: pallets.xls\n\nPallets per dock: 310, 295, 288"
    assert same_document(document_marks(forward), document_marks(attached))
    assert same_document(document_marks(body), document_marks(forward))
    other_week = "\n\n".join(report(15, "9 April", 4120 + n, 3870) for n in range(0, 40, 10))
    assert not same_document(document_marks(body), document_marks(other_week))
    assert not same_document(document_marks(body), document_marks(body.replace("4130", "4131")))


SLACK = Directory(people={uid: Person(uid, name) for uid, name in [("U1", "hamza"), ("U2", "heroeshannibal")]})


def slack(ts: str, user: str, text: str, channel: str = "enrique") -> str:
    """A one-message Slack thread's text, as the Slack connectors write it (`[... UTC] name: ...`)."""
    where = ChannelInfo(f"C-{channel}", channel, "public_channel", ACL(public=True))
    return thread_doc(where, [{"ts": ts, "user": user, "text": text}], SLACK, "https://x.slack.com").text


SAID = (
    "Essentially what I'm getting from this is that SA is just a bad metaheuristic for us to try and apply "
    "to huge problem set and to effectively parallelize"
)


def test_a_chat_message_quoting_another_whole_repeats_it_whoever_posted_it_when():
    """The line labels of a chat transcript (who, and the minute) are left out like a mail's header
    lines: they are not the message's facts. A reply that quotes a message and adds a remark hours
    later repeats it, in Slack as in Teams."""
    original = slack("1458211102.000009", "U1", SAID)  # 2016-03-17 10:38 UTC
    reply = slack("1458228721.000002", "U2", f'&gt;"{SAID}"\nso....what now then?')  # 15:32
    assert original.startswith("[2016-03-17 10:38 UTC] hamza: ") and message_text(original) == SAID
    assert same(reply, original)
    thread = f"Hamza Faran (2016-03-17 10:38): {SAID}\n\nHarry Potter (2016-03-18 09:02): done, see the doc"
    assert message_text(thread) == f"{SAID}\n\ndone, see the doc"
    assert same(f"Harry Potter (2016-03-18 15:32): > {SAID}\nso....what now then?", thread)


def test_chat_messages_of_other_facts_people_or_days_stay_apart():
    """Two people's same short reply, a bot's report of one template with another figure, and a
    reminder posted on two days are each a message; the reminder posted again that day to another
    channel is a copy, as a mail sent again that day is."""
    assert not same(
        slack("1458211102.000009", "U1", "Thanks, will do."), slack("1458211105.000001", "U2", "Thanks, will do.")
    )
    deploy = "Deploy of the api service version {} to production finished in 4 minutes with 0 errors and 2 warnings"
    assert not same(
        slack("1458211102.000009", "U1", deploy.format("1.2")), slack("1458211200.0", "U1", deploy.format("1.3"))
    )
    remind = (
        "Reminder: the retro for this sprint starts at four in the big room, bring one thing to keep and one to drop"
    )
    thursday = slack("1458211102.000009", "U1", remind)  # 2016-03-17
    assert not same(thursday, slack("1458297502.000001", "U1", remind))  # 2016-03-18
    assert same(thursday, slack("1458211402.000001", "U1", remind, channel="general"))
