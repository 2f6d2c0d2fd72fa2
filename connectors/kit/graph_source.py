"""What every Microsoft Graph source shares: the app registration's keys and the client built from them.

A Graph connector (outlook, microsoft_files, teams) subclasses `GraphSourceConfig` for its config and
`GraphConnector` for itself: its `client()` is a `GraphClient` signed in with the app's secret (read
from the environment variable `client_secret_env` names), and `check()` asks the identity platform
for a token, so a refused secret is a `CredentialsError` naming the source before any run starts.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import Field

from ..base import ConfigPath, Connector, SourceConfig
from .graph import SCOPE, GraphClient
from .retry import RetryPolicy


class GraphSourceConfig(SourceConfig):
    """The keys of the app registration and of the Graph endpoint."""

    tenant_id: str = Field(description="directory (tenant) id or domain, e.g. contoso.onmicrosoft.com")
    client_id: str = Field(description="application (client) id of the app registration")
    client_secret_env: str = Field(description="environment variable holding the client secret")
    graph_url: str = Field("https://graph.microsoft.com/v1.0", description="Graph endpoint incl. version")
    authority_url: str = Field("https://login.microsoftonline.com", description="identity platform host")
    ca_bundle: ConfigPath | None = Field(None, description="extra trusted CA (PEM)")
    scope: str = Field(SCOPE, description="token scope (national clouds: their Graph host)")
    timeout: float = Field(60.0, gt=0, description="seconds per HTTP request")


GraphConfigT = TypeVar("GraphConfigT", bound=GraphSourceConfig)


class GraphConnector(Connector[GraphConfigT], Generic[GraphConfigT]):
    """A connector reading Microsoft Graph with the app's token; subclasses set `user_agent`.

    `transport` replaces the network (tests); `policy` is how calls are retried."""

    user_agent: ClassVar[str] = "inlet/0.1"

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
