"""What every Microsoft Graph source shares: the app registration's keys and the client built from them.

A Graph connector (outlook, microsoft_files, teams) subclasses `GraphSourceConfig` for its config and
`GraphConnector` for itself: its `client()` is a `GraphClient` signed in with the app's secret (read
from the environment variable `client_secret_env` names), and `check()` asks the identity platform
for a token, so a refused secret is a `CredentialsError` naming the source before any run starts.
`authority_url` must be https:// (msal takes no other): a plain-http one is a configuration error, and
so is a `subscription_lifetime` longer than Graph allows for the source's resource
(`MAX_SUBSCRIPTION_LIFETIME`: Graph refuses such a subscription rather than shortening it).
`with_client` runs a reader with a fresh client that is closed however the reader ends; a Graph
refusal (401, 403) that escapes the reader (a call the whole run needs, `GET /teams`) leaves as an
`AccessRefusedError` naming the source, the call, Graph's answer and the application permission the
connector's `permissions` give for that call. `webhooks` is the source's change events: a
subscription per resource, only with `notifications_url`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import Field, field_validator

from ..base import CaBundle, Connector, Interval, ServiceUrl, SourceConfig, parse_duration, url_problem
from ..events import EventSource
from inlet.errors import AccessRefusedError

from .graph import SCOPE, GraphClient, GraphError, refusal
from .graph_webhooks import GraphWebhooks
from .retry import RetryPolicy


class GraphSourceConfig(SourceConfig):
    """The keys of the app registration and of the Graph endpoint."""

    # Graph's longest subscription for the source's resource (minutes, and what they are for)
    MAX_SUBSCRIPTION_LIFETIME: ClassVar[tuple[int, str]] = (10080, "mail")

    tenant_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$",
        description="directory (tenant) id or domain, e.g. contoso.onmicrosoft.com",
    )
    client_id: str = Field(pattern=r"\S", description="application (client) id of the app registration")
    client_secret_env: str = Field(description="environment variable holding the client secret")
    graph_url: ServiceUrl = Field("https://graph.microsoft.com/v1.0", description="Graph endpoint incl. version")
    authority_url: str = Field(
        "https://login.microsoftonline.com", description="identity platform host (https:// only: msal refuses http)"
    )
    ca_bundle: CaBundle | None = Field(None, description="extra trusted CA (PEM)")
    scope: str = Field(SCOPE, description="token scope (national clouds: their Graph host)")
    timeout: float = Field(60.0, gt=0, description="seconds per HTTP request")
    # Each source restates these two with its hook path and Graph's lifetime limit for its resource.
    notifications_url: ServiceUrl | None = Field(None, description="public HTTPS URL of this source's hook (daemon)")
    subscription_lifetime: Interval = Field("1h", description="how long each subscription lasts before renewal")

    @field_validator("subscription_lifetime")
    @classmethod
    def _within_graph_limit(cls, value: str) -> str:
        """Graph answers 400 to a subscription that would outlive its limit for the resource (and the
        events would never go live): said here, naming the limit."""
        minutes, what = cls.MAX_SUBSCRIPTION_LIFETIME
        if parse_duration(value) > minutes * 60:
            raise ValueError(
                f"{value!r} is longer than Graph allows a subscription for {what}: at most {minutes} minutes"
            )
        return value

    @field_validator("authority_url")
    @classmethod
    def _https_authority(cls, value: str) -> str:
        """msal signs in only through an https:// authority (loopback included): anything else is
        refused here, as a configuration error, not at the first token request as refused credentials."""
        problem = url_problem(value.strip(), https_only=True)
        if problem:
            raise ValueError(
                f"{problem}, such as https://login.microsoftonline.com "
                "(the identity platform is only reached over HTTPS, also for a local emulator)"
            )
        return value.strip()


GraphConfigT = TypeVar("GraphConfigT", bound=GraphSourceConfig)
T = TypeVar("T")


class GraphConnector(Connector[GraphConfigT], Generic[GraphConfigT]):
    """A connector reading Microsoft Graph with the app's token; subclasses set `user_agent`.

    `transport` replaces the network (tests); `policy` is how calls are retried."""

    user_agent: ClassVar[str] = "inlet/0.1"
    # (regular expression over a call's path, the application permission it needs), first match
    # first: what a refusal of that call tells the operator to grant (the connector page's table)
    permissions: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(
        self,
        config: GraphConfigT,
        env: Any = None,
        *,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(config, env)
        self._transport = transport
        self.policy = policy or RetryPolicy()

    def client(self) -> GraphClient:
        c = self.config
        return GraphClient(
            source=self.name,
            tenant_id=c.tenant_id,
            client_id=c.client_id,
            client_secret=self.secret("client_secret_env"),
            graph_url=c.graph_url,
            authority_url=c.authority_url,
            ca_bundle=c.ca_bundle,
            scope=c.scope,
            timeout=c.timeout,
            policy=self.policy,
            transport=self._transport,
            user_agent=self.user_agent,
        )

    def check(self) -> None:
        client = self.client()
        try:
            client.token()
        finally:
            client.close()

    def with_client(self, read: Callable[[GraphClient], Iterable[T]]) -> Iterator[T]:
        """What `read` yields with a fresh client, closed when it ends, fails or is abandoned."""
        client = self.client()
        try:
            yield from read(client)
        except GraphError as exc:
            if not exc.refused:
                raise
            raise AccessRefusedError(refusal(f"source {self.name!r}", exc, self.permission(exc.call))) from exc
        finally:
            client.close()

    def permission(self, call: str) -> str:
        """The application permission a Graph call (`GET /teams`) needs, per `permissions`; "" if unknown."""
        path = call.partition(" ")[2]
        return next((needed for pattern, needed in self.permissions if re.search(pattern, path)), "")

    def webhooks(
        self,
        resources: Callable[[GraphClient], dict[str, str]],
        change_type: str,
        what: str = "Graph subscription",
        refine: Callable[[str, str], str] | None = None,
        watched: Callable[[dict[str, Any]], dict[str, str]] | None = None,
    ) -> EventSource | None:
        """Change events as one Graph subscription per resource `resources` names ({key: path}), or
        None when the source has no `notifications_url`; `refine`, `watched`: see `GraphWebhooks`."""
        if not self.config.notifications_url:
            return None
        return GraphWebhooks(
            source=self.name,
            url=self.config.notifications_url,
            lifetime=parse_duration(self.config.subscription_lifetime),
            client=self.client,
            resources=resources,
            change_type=change_type,
            what=what,
            refine=refine,
            watched=watched,
        )
