"""Request dependencies: the center, and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from axcenter.model.access import Principal
from axcenter.service.center import Center
from axcenter.store.accounts import authenticate

__all__ = ["CenterDep", "PrincipalDep"]

_bearer = HTTPBearer(auto_error=False, description="an axcenter API token (axc_…)")


def get_center(request: Request) -> Center:
    center: Center = request.app.state.center
    return center


def get_principal(
    center: Annotated[Center, Depends(get_center)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Every API call runs as a principal; no token, or a bad one, is a 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token (Authorization: Bearer axc_…)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with center.store.read() as session:
        who = authenticate(session, credentials.credentials)
    if who is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return who


CenterDep = Annotated[Center, Depends(get_center)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
