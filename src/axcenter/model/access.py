"""Who is calling: the principal every request runs as, and its role.

The roles follow the allocation issue; until it lands, the rules are the hook in
``service.access``: operators see everything, organization admins their organization,
members the projects they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Principal", "Role"]


class Role(StrEnum):
    OPERATOR = "operator"
    PROGRAM_MANAGER = "program_manager"
    REVIEWER = "reviewer"
    ORG_ADMIN = "org_admin"
    MEMBER = "member"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    name: str
    organization_id: str
    role: Role

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR
