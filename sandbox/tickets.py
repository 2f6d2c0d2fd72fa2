"""Generated support tickets and runbooks: folders full of look-alike identifiers.

Workplace questions name things: a ticket number, a purchase order, an error code, a host, a
contact's address, an incident channel. Here 300 tickets share one template and differ mostly in
those names (INC-20931 next to INC-20932, db-fra-117 next to db-fra-118), which an embedding model
cannot tell apart: what retrieval must get right by matching names exactly. Every identifier of a
ticket appears in that ticket alone; runbooks name other hosts, their owners and decisions.
Deterministic for a seed, so benchmarks and tests label answers by identifier.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

SERVICES = (
    "checkout API",
    "billing worker",
    "search gateway",
    "login service",
    "invoice exporter",
    "payments queue",
    "report scheduler",
    "mobile push relay",
    "inventory sync",
    "fraud scorer",
)
SYMPTOMS = (
    "returns 502 errors for a share of requests",
    "times out under peak load",
    "fails health checks after the nightly deploy",
    "drops messages when the queue backs up",
    "logs repeated authentication failures",
    "runs out of disk on its data volume",
    "answers slowly after a configuration change",
    "restarts in a loop after an upgrade",
)
FIXES = (
    "rolled back the release and pinned the previous image",
    "raised the connection pool limit",
    "rotated the expired TLS certificate",
    "cleared the stuck consumer offsets and replayed the queue",
    "added disk and enabled log rotation",
    "reverted the configuration flag and added an alert",
)
SITES = ("fra", "ams", "iad", "sfo", "sin")
ROLES = ("db", "app", "cache", "mq")
FIRST = (
    "dana",
    "priya",
    "tomas",
    "lena",
    "omar",
    "yuki",
    "marta",
    "felix",
    "ines",
    "kofi",
    "sara",
    "ravi",
    "nora",
    "jonas",
    "amir",
)
LAST = ("ng", "raman", "novak", "berg", "haddad", "sato", "silva", "weber", "costa", "mensah")
COMPANIES = ("acme", "globex", "initech")
AGENTS = ("Priya Raman", "Tomas Novak", "Lena Berg", "Omar Haddad", "Yuki Sato", "Marta Silva")
OWNERS = (
    "Dana Whitfield",
    "Felix Weber",
    "Ines Costa",
    "Kofi Mensah",
    "Sara Lind",
    "Ravi Iyer",
    "Nora Quist",
    "Jonas Falk",
)
TOPICS = ("backups", "failover", "patching", "disk alerts", "certificate rotation", "capacity")
DECISIONS = (
    "move the nightly backup window to 02:00 UTC",
    "fail over to the secondary site only with two approvers",
    "patch on the second Tuesday of each month",
    "page at 85% disk instead of 90%",
    "rotate certificates thirty days before expiry",
    "add a replica before the quarter-end peak",
)


@dataclass(frozen=True)
class Ticket:
    """One ticket and the identifiers found in it alone."""

    number: str  # INC-20931
    order: str  # PO-2026-04192
    error: str  # 0x8007A2B6
    host: str  # db-fra-117.prod.example.com
    contact: str  # dana.ng@acme.example.com
    channel: str  # #checkout-incident-17
    service: str
    opened: date
    agent: str
    text: str

    @property
    def filename(self) -> str:
        return f"{self.number}.md"


@dataclass(frozen=True)
class Runbook:
    host: str
    owner: str
    topic: str
    decision: str
    text: str

    @property
    def filename(self) -> str:
        return f"{self.host.split('.')[0]}-{self.topic.replace(' ', '-')}.md"


def tickets(count: int = 300, seed: int = 13) -> list[Ticket]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        service = SERVICES[i % len(SERVICES)]
        symptom, fix = rng.choice(SYMPTOMS), rng.choice(FIXES)
        ticket = Ticket(
            number=f"INC-{20900 + i}",
            order=f"PO-2026-{4100 + i:05d}",
            error=f"0x8007{0xA200 + i:04X}",
            host=f"{ROLES[i % len(ROLES)]}-{SITES[i % len(SITES)]}-{100 + i}.prod.example.com",
            contact=f"{FIRST[i % len(FIRST)]}.{LAST[i // len(FIRST) % len(LAST)]}@"
            f"{COMPANIES[i // (len(FIRST) * len(LAST)) % len(COMPANIES)]}.example.com",
            channel=f"#{service.split()[0]}-incident-{i // len(SERVICES) + 1}",
            service=service,
            opened=date(2026, 1, 5) + timedelta(days=i // 3),
            agent=rng.choice(AGENTS),
            text="",
        )
        out.append(_with_text(ticket, symptom, fix))
    return out


def _with_text(t: Ticket, symptom: str, fix: str) -> Ticket:
    text = (
        f"# {t.number}: {t.service} {symptom}\n\n"
        f"Opened {t.opened.isoformat()} by {t.contact}; assigned to {t.agent}. War room: {t.channel}.\n\n"
        f"The customer reports that the {t.service} {symptom}. The affected host is {t.host}; the "
        f"client log shows error {t.error}. The order behind the affected purchase is {t.order}.\n\n"
        f"Resolution: {t.agent} {fix}, then confirmed with the customer that the {t.service} "
        f"is healthy again."
    )
    return Ticket(**{**t.__dict__, "text": text})


def runbooks(count: int = 40, seed: int = 13) -> list[Runbook]:
    rng = random.Random(seed + 1)
    out = []
    for i in range(count):
        host = f"{ROLES[i % len(ROLES)]}-{SITES[i % len(SITES)]}-{500 + i}.prod.example.com"
        owner, n = OWNERS[i % len(OWNERS)], i % len(TOPICS)
        topic, decision = TOPICS[n], DECISIONS[n]
        steps = rng.sample(
            [
                "Check the replication lag on the dashboard.",
                "Drain traffic with the load balancer API.",
                "Take a snapshot of the data volume.",
                "Confirm the on-call engineer in the pager tool.",
                "Run the smoke tests against the host.",
                "Announce the change in the operations channel.",
            ],
            4,
        )
        text = (
            f"# Runbook: {topic} for {host}\n\nOwner: {owner}. After the last review {owner.split()[0]} "
            f"decided to {decision}.\n\n" + "\n".join(f"{k}. {s}" for k, s in enumerate(steps, 1))
        )
        out.append(Runbook(host, owner, topic, decision, text))
    return out


def write_folders(root: Path, count: int = 300, seed: int = 13) -> tuple[Path, Path]:
    """`root/tickets` and `root/runbooks`, one Markdown file each; returns both folders."""
    files: dict[Path, list[Ticket] | list[Runbook]] = {
        root / "tickets": tickets(count, seed),
        root / "runbooks": runbooks(seed=seed),
    }
    for folder, items in files.items():
        folder.mkdir(parents=True, exist_ok=True)
        for item in items:
            (folder / item.filename).write_text(item.text + "\n", encoding="utf-8")
    return root / "tickets", root / "runbooks"
