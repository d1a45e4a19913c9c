"""Organizations, users, roles and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import identities, passwords
from axcenter.service import organizations as service
from axcenter.service.schemas import (
    ConflictIn,
    ConflictListOut,
    OrganizationIn,
    OrganizationListOut,
    OrganizationOut,
    TokenIn,
    TokenOut,
    TokenRotateIn,
    UnixAccountIn,
    UnixAccountOut,
    UserIn,
    UserListOut,
    UserOut,
    UserPatchIn,
)

router = APIRouter(tags=["organizations"])


@router.get("/organizations")
def list_organizations(center: CenterDep, who: PrincipalDep) -> OrganizationListOut:
    return OrganizationListOut(items=service.list_organizations(center, who))


@router.post("/organizations", status_code=status.HTTP_201_CREATED)
def create_organization(
    body: OrganizationIn, center: CenterDep, who: PrincipalDep
) -> OrganizationOut:
    return service.create_organization(center, who, body)


@router.get("/organizations/{organization}")
def get_organization(organization: str, center: CenterDep, who: PrincipalDep) -> OrganizationOut:
    return service.get_organization(center, who, organization)


@router.get("/users")
def list_users(
    center: CenterDep, who: PrincipalDep, organization: str | None = None
) -> UserListOut:
    """Users the caller may see (operators and program managers: all; organization
    admins: their organization; others: themselves)."""
    return UserListOut(items=service.list_users(center, who, organization))


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(body: UserIn, center: CenterDep, who: PrincipalDep) -> UserOut:
    """Create a user; the answer carries its first token, shown this once."""
    return service.create_user(center, who, body)


@router.get("/users/{user}")
def get_user(user: str, center: CenterDep, who: PrincipalDep) -> UserOut:
    """A user with its tokens (never their secrets)."""
    return service.get_user(center, who, user)


@router.patch("/users/{user}")
def update_user(user: str, body: UserPatchIn, center: CenterDep, who: PrincipalDep) -> UserOut:
    """Change a role or deactivate (operators only)."""
    return service.update_user(center, who, user, body)


@router.put("/users/{user}/unix-account")
def map_unix_account(
    user: str, body: UnixAccountIn, center: CenterDep, who: PrincipalDep
) -> UnixAccountOut:
    """Run the user's jobs as an existing unix account (operators only; audited)."""
    return identities.map_account(center, who, user, body.account)


@router.get("/users/{user}/conflicts")
def list_conflicts(user: str, center: CenterDep, who: PrincipalDep) -> ConflictListOut:
    """The organizations a reviewer declared a conflict of interest with."""
    return service.list_conflicts(center, who, user)


@router.post("/users/{user}/conflicts", status_code=status.HTTP_201_CREATED)
def declare_conflict(
    user: str, body: ConflictIn, center: CenterDep, who: PrincipalDep
) -> ConflictListOut:
    """Declare a conflict of interest (a competitor): that organization's requests are
    never assigned to this reviewer."""
    return service.declare_conflict(center, who, user, body)


@router.delete("/users/{user}/conflicts/{organization}", status_code=status.HTTP_204_NO_CONTENT)
def withdraw_conflict(
    user: str, organization: str, center: CenterDep, who: PrincipalDep
) -> Response:
    """Withdraw a declared conflict (operators and program managers)."""
    service.withdraw_conflict(center, who, user, organization)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/users/{user}/tokens", status_code=status.HTTP_201_CREATED)
def issue_token(user: str, body: TokenIn, center: CenterDep, who: PrincipalDep) -> TokenOut:
    """A new token; the answer is the only place it is ever shown."""
    return service.issue_token(center, who, user, body.name, body.expires_in_days)


@router.post("/users/{user}/password-reset", status_code=status.HTTP_201_CREATED)
def reset_password(
    user: str, request: Request, center: CenterDep, who: PrincipalDep
) -> passwords.PasswordResetOut:
    """Drop the user's password and second factor, unlock the account and end its
    dashboard sessions (operators only); the answer's link, valid once, lets the user
    choose a new password and set up a new second factor. Hand it over in person or by a
    channel you trust: whoever opens it first owns the account."""
    out = passwords.reset_link(center, who, user)
    return out.model_copy(update={"link": str(request.base_url).rstrip("/") + out.link})


@router.post("/tokens/{token_id}/rotate", status_code=status.HTTP_201_CREATED)
def rotate_token(
    token_id: str, body: TokenRotateIn, center: CenterDep, who: PrincipalDep
) -> TokenOut:
    """A new token in place of this one, which is revoked at once; the answer is the
    only place the new one is ever shown."""
    return service.rotate_token(center, who, token_id, body.expires_in_days)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: str, center: CenterDep, who: PrincipalDep) -> Response:
    service.revoke_token(center, who, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
