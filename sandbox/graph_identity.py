"""The Microsoft identity platform, as far as a daemon app meets it: discovery and client credentials.

msal (instance discovery off, or the `/common/discovery/instance` answer below) reads
`/{tenant}/v2.0/.well-known/openid-configuration`, then posts to its `token_endpoint`. Errors use
Entra's shape (`error`, `error_description` starting with the AADSTS code, `error_codes`, ...), so
msal hands them back unchanged.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .graph_seed import mail_state

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def identity_routes(ctx: Any) -> list[BaseRoute]:
    ws = ctx.ws

    def tenant_ok(tenant: str) -> bool:
        state = mail_state(ws)
        return tenant.lower() in {state.tenant_id.lower(), state.tenant_guid, "organizations", "common"}

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def openid(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if ctx.faults.check("identity", "openid-configuration") is not None or not tenant_ok(tenant):
            return _aad_error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make "
                "sure you have the correct tenant ID and are signing into the correct cloud.",
            )
        guid = mail_state(ws).tenant_guid
        root = f"{base(request)}/{guid}"
        return JSONResponse(
            {
                "issuer": f"{base(request)}/{guid}/v2.0",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "tenant_region_scope": "NA",
                "cloud_instance_name": "sandbox",
            }
        )

    async def discovery(request: Request) -> Response:
        endpoint = request.query_params.get("authorization_endpoint", "")
        tenant = endpoint.split("/")[3] if endpoint.count("/") >= 4 else "common"
        return JSONResponse(
            {
                "tenant_discovery_endpoint": f"{base(request)}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [
                    {
                        "preferred_network": request.url.netloc,
                        "preferred_cache": request.url.netloc,
                        "aliases": [request.url.netloc],
                    }
                ],
            }
        )

    async def token(request: Request) -> Response:
        fault = ctx.faults.check("identity", "token")
        if fault is not None:
            return _aad_error(
                fault.status,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
                fault.retry_after,
            )
        form = await request.form()
        state = mail_state(ws)
        if not tenant_ok(request.path_params["tenant"]):
            return _aad_error(400, "invalid_request", 90002, f"Tenant '{request.path_params['tenant']}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        client_id = str(form.get("client_id", ""))
        if client_id != state.client_id:
            return _aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{state.tenant_id}'.",
            )
        if form.get("client_secret") != state.client_secret:
            return _aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the "
                "secret being sent in the request is the client secret value, not the client "
                f"secret ID, for a secret added to app '{client_id}'.",
            )
        scopes = str(form.get("scope", "")).split()
        if GRAPH_SCOPE not in scopes:
            return _aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope "
                f"{' '.join(scopes)} is not valid. Client credential flows must have a scope "
                "value with /.default suffixed to the resource identifier.",
            )
        with ws.lock:
            access = state.issue_token(ws.clock())
        return JSONResponse(
            {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": access}
        )

    return [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid),
        Route("/common/discovery/instance", discovery),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
    ]


def _aad_error(status: int, error: str, code: int, description: str, retry_after: float | None = None) -> JSONResponse:
    now = dt.datetime.now(dt.timezone.utc)
    trace, correlation = uuid.uuid4(), uuid.uuid4()
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} "
        f"Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": str(trace),
        "correlation_id": str(correlation),
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
    return JSONResponse(body, status_code=status, headers=headers)
