"""Request dependencies: the center, and the authenticated principal.

Both are ``async``: FastAPI runs a plain ``def`` dependency in the thread pool, a hop
that costs more than either does. Authentication reads the store only on a cache miss
(see ``principals``), in the thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from axcenter.model.access import Principal
from axcenter.service.center import Center
from axcenter.store.accounts import authenticate, hash_token
from axcenter.store.cache import VersionedCache

__all__ = [
    "BEARER_SECURITY",
    "CenterDep",
    "PrincipalDep",
    "authenticate_token",
    "authenticated",
    "principals",
]

_bearer = HTTPBearer(auto_error=False, description="an axcenter API token (axc_…)")
#: the OpenAPI security requirement of an endpoint that calls ``authenticated`` itself
BEARER_SECURITY: list[dict[str, list[str]]] = [{_bearer.scheme_name: []}]

#: what authentication reads; a commit that changes one of them empties the cache
PRINCIPAL_TABLES = ("api_tokens", "users")
#: bound on how long a change made by another process (not seen by the store) goes unseen
PRINCIPAL_TTL_S = 5.0


async def get_center(request: Request) -> Center:
    center: Center = request.app.state.center
    return center


def principals(center: Center) -> VersionedCache[str, Principal]:
    """Token hash -> principal, for tokens that authenticated (failures are not kept).

    Revoking a token, deactivating a user or changing a role commits to one of
    ``PRINCIPAL_TABLES``, which drops every entry before the next request is served.
    """
    return center.store.cache("principals", PRINCIPAL_TABLES, PRINCIPAL_TTL_S)


def _authenticate(center: Center, token: str, key: str) -> Principal | None:
    cache = principals(center)
    version = cache.version()
    with center.store.read() as session:
        who = authenticate(session, token)
    if who is not None:
        cache.put(key, who, version)
    return who


async def authenticate_token(center: Center, token: str) -> Principal | None:
    """The principal behind ``token``, for the guard (``api.guard``): from the cache on
    the event loop, else from the store in the thread pool."""
    key = hash_token(token)
    who = principals(center).get(key)
    if who is None:
        who = await run_in_threadpool(_authenticate, center, token, key)
    return who


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Every API call runs as a principal; no token, or a bad one, is a 401. The guard
    (``api.guard``) authenticated it already, before reading the body."""
    who: Principal | None = getattr(request.state, "principal", None)
    return who or await _principal(request.app.state.center, credentials)


async def authenticated(request: Request) -> Principal:
    """``get_principal`` as a plain call, for the submission endpoint (the hot path):
    resolving FastAPI dependencies costs more than a cached authentication itself.
    Such an endpoint declares ``BEARER_SECURITY`` in its OpenAPI entry."""
    who: Principal | None = getattr(request.state, "principal", None)
    return who or await _principal(request.app.state.center, await _bearer(request))


async def _principal(center: Center, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token (Authorization: Bearer axc_…)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    who = await authenticate_token(center, credentials.credentials)
    if who is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return who


CenterDep = Annotated[Center, Depends(get_center)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
