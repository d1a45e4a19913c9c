"""Who am I, and what should I hear about (notifications)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import mail
from axcenter.service.notifications import notifications
from axcenter.service.schemas import MailSettingsIn, MailSettingsOut, NotificationOut, WhoAmIOut
from axcenter.store import orm

router = APIRouter(tags=["people"])


@router.get("/whoami")
def whoami(center: CenterDep, who: PrincipalDep) -> WhoAmIOut:
    with center.store.read() as session:
        org = session.get(orm.Organization, who.organization_id)
    return WhoAmIOut(
        id=who.user_id,
        name=who.name,
        organization_id=who.organization_id,
        organization=org.name if org else "",
        role=who.role.value,
        time_zone=center.settings.time_zone,
    )


@router.get("/notifications")
def my_notifications(
    center: CenterDep, who: PrincipalDep, since: datetime | None = None
) -> list[NotificationOut]:
    """The caller's notifications newer than ``since`` (at most two weeks old), newest
    first, then standing alerts on grants (``at`` null)."""
    at = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since
    return notifications(center, who, since=at)


@router.get("/notifications/settings")
def my_mail_settings(center: CenterDep, who: PrincipalDep) -> MailSettingsOut:
    """Which notifications reach the caller by e-mail, where, and in which language."""
    return mail.mail_settings(center, who)


@router.put("/notifications/settings")
def set_my_mail_settings(
    body: MailSettingsIn, center: CenterDep, who: PrincipalDep
) -> MailSettingsOut:
    """Choose the kinds of notification mailed to ``address`` (null: none) in
    ``language``; what happens from now on is mailed, once each."""
    return mail.set_mail_settings(center, who, body)
