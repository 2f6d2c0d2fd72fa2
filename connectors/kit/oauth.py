"""OAuth2 client credentials (RFC 6749 section 4.4) as an `httpx.Auth` for a kit client.

Invariants: every request carries a current token: one is fetched on first use and renewed
`margin` seconds before the `expires_in` it came with runs out, and on a 401, once per request,
after which that answer is the caller's (`raise_for_status()` makes it a `CredentialsError`).
The renewal on a 401 is what keeps a retried call working: `RetryTransport` retries below the
auth flow, re-sending the same request with the header it had, so a token that expires during a
`Retry-After` wait comes back as a 401, which brings a new token and a new round of tries (the
rule `kit.graph.GraphClient` and `kit.google.GoogleService` follow above their retries too). One
token is shared by the client's threads: a 401 for a token another thread has already replaced
takes that one, not a third. A token endpoint that refuses the client (400, 401) is a
`CredentialsError` naming the source; its other failures are retried like any call, then leave as
httpx errors (`kit.transport.http_errors` names them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import httpx

from inlet.errors import CredentialsError, InletError
from inlet.logs import shown_url


class ClientCredentials(httpx.Auth):
    """`client.auth = ClientCredentials(token_url, client_id, secret, source=self.name)` on a
    `kit.transport.client()`. `scope`: the scope asked for, if the service wants one; `basic`: send
    the client's id and secret as HTTP Basic credentials rather than in the form."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        source: str,
        scope: str | None = None,
        basic: bool = False,
        margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url, self.client_id, self.client_secret = token_url, client_id, client_secret
        self.source, self.scope, self.basic, self.margin, self.clock = source, scope, basic, margin, clock
        self.token: str | None = None
        self.expires = 0.0  # on `clock`: when the token is renewed before use
        self.fetched = 0  # tokens fetched

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = yield from self._current(None)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = yield from self._current(token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def _current(self, refused: str | None) -> Generator[httpx.Request, httpx.Response, str]:
        """The token to send: the one held, unless it is missing, about to expire or `refused`."""
        token = self.token
        if token is not None and token != refused and self.clock() < self.expires:
            return token
        form = {"grant_type": "client_credentials"} | ({"scope": self.scope} if self.scope else {})
        auth = None
        if self.basic:
            auth = httpx.BasicAuth(self.client_id, self.client_secret)
        else:
            form |= {"client_id": self.client_id, "client_secret": self.client_secret}
        request = httpx.Request("POST", self.token_url, data=form)
        if auth is not None:
            request = next(auth.auth_flow(request))
        response = yield request
        response.read()
        where = f"the token endpoint {shown_url(self.token_url)}"
        if response.status_code in (400, 401):
            raise CredentialsError(
                self.source,
                f"{where} refused the client credentials: HTTP {response.status_code} {response.text[:200]}",
            )
        response.raise_for_status()
        try:
            body = response.json()
            token, lifetime = str(body["access_token"]), float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise InletError(
                f"source {self.source!r}: {where} answered no access_token: {response.text[:200]}"
            ) from exc
        self.token, self.expires = token, self.clock() + lifetime - min(self.margin, lifetime / 2)
        self.fetched += 1
        return token
