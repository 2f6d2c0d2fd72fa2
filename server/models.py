"""Request and response bodies of the retrieval API (docs/reference/api.md); they make /openapi.json."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from inlet.connectors.model import iso_time
from inlet.index.relevance import default_min_relevance
from inlet.index.search import Hit, SearchRequest

MetadataValue = Union[str, int, float, bool, list[str]]


MAX_QUERY_CHARS = 4000  # a longer query is refused (HTTP and MCP alike): its cost grows with its length


def _shown(value: object) -> str:
    """A JSON value as an error message quotes it: at most 40 characters of it."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:40] + "…"


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        ...,
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        pattern=r"\S",
        description="what to look for, in plain words (not blank)",
    )
    k: int = Field(10, ge=1, le=100, description="number of results to return (one per document)")
    sources: list[str] = Field(
        default_factory=list,
        description="only these sources, by the `name` configured for each (what a result's `source` says). "
        "A name no source has (for a user: no source holding a document they may see) is a 422 "
        "invalid_request naming the valid ones",
    )
    source_types: list[str] = Field(
        default_factory=list,
        description="only these kinds of source, in any case (what a result's `source_type` says): the `type` "
        "of a configured source; built in: slack, slack_export, teams, outlook, gmail, mail_archive, "
        "google_drive, microsoft_files, files. A type this deployment has no source of is a 422 "
        "invalid_request naming the ones it has",
    )
    after: datetime | None = Field(None, description="only documents updated at or after (RFC 3339)")
    before: datetime | None = Field(None, description="only documents updated before (RFC 3339)")
    user: str | None = Field(
        None,
        pattern=r"\S",
        max_length=320,
        description="the user to search as: required with an on_behalf_of key, "
        "forbidden with a user key, optional for admin keys",
    )
    recency: bool = Field(True, description="prefer recent documents slightly (false: rank by relevance only)")

    @field_validator("*", mode="before")
    @classmethod
    def _json_typed(cls, value: object, info: ValidationInfo) -> object:
        # As the schema says: pydantic alone would take "3" or true for an integer, "no" or 0 for a
        # boolean, "0.5" for a number. An integral number (2.0) is an integer, as in JSON Schema.
        wanted = cls.model_fields[info.field_name or ""].annotation
        if wanted is bool and not isinstance(value, bool):
            raise PydanticCustomError("json_type", "must be true or false, not {value}", {"value": _shown(value)})
        if wanted in (int, float) and (isinstance(value, (bool, str)) or not isinstance(value, (int, float))):
            kind = "an integer" if wanted is int else "a number"
            raise PydanticCustomError(
                "json_type", "must be {kind}, not {value}", {"kind": kind, "value": _shown(value)}
            )
        return value

    @field_validator("after", "before", mode="before")
    @classmethod
    def _a_string(cls, value: object) -> object:
        # As the schema says: pydantic alone would also take a number, as epoch seconds.
        if value is not None and not isinstance(value, (str, datetime)):
            raise ValueError("must be an RFC 3339 date-time string")
        return value

    @field_validator("after", "before")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    def to_request(self, user: str | None, half_life_days: float, k: int | None = None) -> SearchRequest:
        return SearchRequest(
            query=self.query,
            k=k or self.k,
            sources=tuple(self.sources),
            source_types=tuple(self.source_types),
            after=self.after,
            before=self.before,
            user=user,
            recency_half_life_days=half_life_days if self.recency else 0.0,
        )


MIN_RELEVANCE = default_min_relevance()


class ContextBody(SearchBody):
    token_budget: int = Field(
        2000, ge=50, le=100_000, description="most tokens (embedding model's tokenizer) the context may take"
    )
    min_relevance: float = Field(
        MIN_RELEVANCE,
        ge=0.0,
        le=1.0,
        description="pack only results whose relevance is at least this; the default "
        "was chosen on labelled questions (docs/relevance.md). At the default or above, an answer whose "
        "match is none packs nothing: its results are near misses",
    )


class SearchResult(BaseModel):
    chunk_id: str
    doc_id: str
    source: str
    source_type: str
    title: str
    text: str = Field(description="the document's best matching passage")
    passages: list[str] = Field(
        default_factory=list, description="up to three more matching passages of the same document, best first"
    )
    url: str
    author: str
    created_at: str | None
    updated_at: str | None
    score: float = Field(description="the ranking score (comparable within one response only)")
    relevance: float = Field(ge=0.0, le=1.0, description="calibrated chance that this result answers the query")
    metadata: dict[str, MetadataValue]

    @classmethod
    def of(cls, hit: Hit) -> "SearchResult":
        fields = hit.as_dict()
        times = {k: iso(fields.get(k)) for k in ("created_at", "updated_at")}
        return cls(**{**fields, **times})


Match = Literal["strong", "weak", "none"]
MATCH_DESCRIPTION = (
    "strong: a result is very likely an answer; weak: one may be; none: nothing here answers "
    "(the results, if any, are near misses)"
)


def _absent(value: object) -> bool:
    return value is None


class Interpreted(BaseModel):
    """What the query was understood to ask beyond its words (absent keys: nothing understood)."""

    after: str | None = Field(None, exclude_if=_absent, description="a time phrase's start (RFC 3339)")
    before: str | None = Field(None, exclude_if=_absent, description="a time phrase's end (RFC 3339), exclusive")
    source_types: list[str] | None = Field(
        None, exclude_if=_absent, description='source words ("in Slack", "the email")'
    )
    people: list[str] | None = Field(
        None, exclude_if=_absent, description="people the index knows whose documents are preferred"
    )
    sort: Literal["newest"] | None = Field(
        None,
        exclude_if=_absent,
        description='"newest": the question asked for the newest thing ("the latest Teams message"); the likely '
        "answers, or with no topic the newest documents within the filters, come newest first",
    )


class SearchResponse(BaseModel):
    results: list[SearchResult] = Field(description="best first, one per document")
    match: Match = Field(description=MATCH_DESCRIPTION)
    interpreted: Interpreted = Field(
        description="the filters and boosts read from the query that the search applied: a window or "
        "source types the request sets itself replace those read from the query, which are left out; when "
        "its filters would leave nothing the plain query runs and they are left out"
    )
    took_ms: float


class Citation(BaseModel):
    n: int
    doc_id: str
    title: str
    url: str
    source: str


class ContextResponse(BaseModel):
    context: str = Field(description="passages marked [n], fenced as quoted data, ready to paste into a prompt")
    citations: list[Citation]
    results: list[SearchResult] = Field(description="the results packed into the context, in order")
    tokens: int = Field(description="tokens the context takes (embedding model's tokenizer)")
    match: Match = Field(description=MATCH_DESCRIPTION + "; none also when no result reached min_relevance")
    interpreted: Interpreted
    took_ms: float


class AclOut(BaseModel):
    public: bool
    users: list[str]
    domains: list[str]


class DocumentOut(BaseModel):
    """A whole document (the model of connectors/model.py); `acl` only for admin keys."""

    id: str
    source: str
    source_type: str
    title: str
    text: str
    url: str
    author: str
    created_at: str | None
    updated_at: str | None
    metadata: dict[str, MetadataValue]
    acl: AclOut | None = Field(None, description="who may see it; present only for admin keys")


class LastRun(BaseModel):
    model_config = ConfigDict(extra="allow")

    started_at: str | None
    finished_at: str | None
    outcome: str | None
    upserted: int
    deleted: int
    skipped: int
    errors: int
    error: str | None


class SourceStatus(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    type: str
    documents: int
    chunks: int
    last_run: LastRun | None
    next_run: str | None


class UnconfiguredSource(BaseModel):
    """Documents of a source the configuration no longer names (removed or renamed): not served."""

    name: str
    documents: int
    chunks: int
    remove: str = Field(description="the command that deletes them (`inlet forget NAME`)")
    state_only: bool = Field(
        default=False,
        description="no documents left, only sync state (checkpoint, runs): an interrupted `inlet forget`, "
        "which `remove` finishes",
    )


class SourcesResponse(BaseModel):
    sources: list[SourceStatus]
    unconfigured: list[UnconfiguredSource] = Field(
        default_factory=list, description="sources the index holds that the configuration does not name"
    )
    upgrade: list[str] = Field(
        default_factory=list,
        description="schema steps the next process that writes will apply (empty once a writer opened the index)",
    )


class Run(BaseModel):
    """One run of a source, as `inlet sync --json` prints it."""

    model_config = ConfigDict(extra="allow")

    source: str
    outcome: str = Field(description="ok, partial, failed or interrupted")
    upserted: int
    deleted: int
    skipped: int
    errors: int
    seconds: float
    error: str | None
    credentials_refused: bool


class RunsResponse(BaseModel):
    runs: list[Run]


class SourcePaused(BaseModel):
    source: str
    paused: bool = Field(description="true after pause, false after resume")


class SourceQueued(BaseModel):
    source: str
    queued: str = Field(description="the action queued: run or backfill")


class ConsoleRun(BaseModel):
    model_config = ConfigDict(extra="allow")

    outcome: str | None
    error: str | None


class ConsoleSource(SourceStatus):
    history: list[ConsoleRun] = Field(description="its last runs, newest first")
    recent_errors: list[dict[str, Any]] = Field(description="`at`, `kind` and `error` of recent failed runs")
    current_error: dict[str, Any] | None = Field(description="the last run's error while it is the latest outcome")
    paused_since: str | None


class ConsoleData(SourcesResponse):
    sources: list[ConsoleSource]  # type: ignore[assignment]
    can_run: bool = Field(description="this process runs sources (`inlet daemon --serve`): run and backfill work")


class Health(BaseModel):
    status: str


def iso(value: datetime | str | None) -> str | None:
    """A time as the API shows it: UTC, `Z`, at most millisecond precision (a service's microseconds,
    like Slack's `...40.000100Z`, are noise to a client). A string that is not a time is kept."""
    if value is None or value == "":
        return None
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    assert isinstance(when, datetime)
    return iso_time(when)


def document_out(doc: Any, with_acl: bool) -> dict[str, Any]:
    """The JSON of a stored Document; `acl` left out unless `with_acl`."""
    out: dict[str, Any] = {
        "id": doc.id,
        "source": doc.source,
        "source_type": doc.source_type,
        "title": doc.title,
        "text": doc.text,
        "url": doc.url,
        "author": doc.author,
        "created_at": iso(doc.created_at),
        "updated_at": iso(doc.updated_at),
        "metadata": dict(doc.metadata),
    }
    if with_acl:
        out["acl"] = doc.acl.model_dump()
    return out
