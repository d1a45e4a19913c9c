"""Organizations, users, roles and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import identities
from axcenter.service import organizations as service
from axcenter.service.schemas import (
    OrganizationIn,
    OrganizationListOut,
    OrganizationOut,
    TokenIn,
    TokenOut,
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


@router.post("/users/{user}/tokens", status_code=status.HTTP_201_CREATED)
def issue_token(user: str, body: TokenIn, center: CenterDep, who: PrincipalDep) -> TokenOut:
    """A new token; the answer is the only place it is ever shown."""
    return service.issue_token(center, who, user, body.name)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: str, center: CenterDep, who: PrincipalDep) -> Response:
    service.revoke_token(center, who, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
