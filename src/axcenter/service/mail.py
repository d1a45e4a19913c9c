"""Notifications by e-mail: each user's choice, and the ``Mailer`` thread that sends them.

What a person hears about is ``service.notifications`` (derived from the records the
center keeps); this module mails it to those who gave an address, for the kinds they chose
(``KINDS``: job ended, failed, preempted; review assigned; decision made; grant at 80% and
100%; grant expiring; notices about a grant; request activity for staff), written in their
language (``TEXTS``), nothing older than the moment they asked.

Sending never blocks the control loop nor a request: the ``Mailer`` is a thread of the
``Center`` (started when ``Settings.smtp_host`` is set) that, every ``mail_every_s``,

1. **queues** each new notice in ``mail_outbox``, whose primary key (user, notice) makes
   each notice queued once, whatever restarts or concurrent passes happen;
2. **sends** the queued ones due, each marked ``sending`` in its own committed transaction
   before the SMTP conversation and ``sent`` after it; a failure is retried with a
   doubling pause (``RETRY_FIRST_S``) up to ``MAX_ATTEMPTS``, then ``failed`` with its
   error kept. A restart resumes from the table: sent notices are never sent again; one
   whose sending was cut by the crash itself (``sending`` at start) is sent again, the
   one case where a notice may arrive twice, rather than never.
"""

from __future__ import annotations

import logging
import smtplib
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from axcenter.model.access import Principal, Role
from axcenter.service.errors import InvalidInput
from axcenter.service.notifications import notifications
from axcenter.service.schemas import MailSettingsIn, MailSettingsOut, NotificationOut
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "KINDS",
    "MAX_ATTEMPTS",
    "TEXTS",
    "Mailer",
    "kind_of",
    "mail_settings",
    "set_mail_settings",
]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
RETRY_FIRST_S = 30.0

#: the kinds one may choose, each with the notifications it covers (prefixes of their kind)
KINDS: Mapping[str, tuple[str, ...]] = {
    "job_ended": ("job.succeeded", "job.cancelled"),
    "job_failed": ("job.failed", "job.timed_out"),
    "job_preempted": ("job.preempted",),
    "review_assigned": ("request.assigned",),
    "decision": ("request.approved", "request.rejected", "request.returned"),
    "request_activity": ("request.submitted", "request.resubmitted", "request.reviewed"),
    "grant_80": ("grant.80%",),
    "grant_100": ("grant.100%",),
    "grant_expiring": ("grant.expiring",),
    "grant_notice": ("notice.",),
}

#: a notification's kind -> (English, Korean) subject lines; {subject} names the job,
#: project or grant; {ref} is its id
TEXTS: Mapping[str, tuple[str, str]] = {
    "job.succeeded": ("Job {subject} finished", "작업 {subject}이(가) 완료되었습니다"),
    "job.cancelled": ("Job {subject} was cancelled", "작업 {subject}이(가) 취소되었습니다"),
    "job.failed": ("Job {subject} failed", "작업 {subject}이(가) 실패했습니다"),
    "job.timed_out": (
        "Job {subject} reached its time limit",
        "작업 {subject}이(가) 시간 제한에 도달했습니다",
    ),
    "job.preempted": (
        "Job {subject} was preempted and waits to run again",
        "작업 {subject}이(가) 선점되어 다시 실행을 기다립니다",
    ),
    "request.assigned": (
        "A request of {subject} was assigned to you for review",
        "{subject}의 배정 신청 심사가 배정되었습니다",
    ),
    "request.approved": (
        "The request of {subject} was approved",
        "{subject}의 배정 신청이 승인되었습니다",
    ),
    "request.rejected": (
        "The request of {subject} was rejected",
        "{subject}의 배정 신청이 반려되었습니다",
    ),
    "request.returned": (
        "The request of {subject} was returned for changes",
        "{subject}의 배정 신청에 보완 요청이 있습니다",
    ),
    "request.submitted": ("{subject} filed a request", "{subject}이(가) 배정을 신청했습니다"),
    "request.resubmitted": (
        "{subject} resubmitted a request",
        "{subject}이(가) 배정을 재신청했습니다",
    ),
    "request.reviewed": (
        "A request of {subject} was reviewed",
        "{subject}의 배정 신청 심사가 제출되었습니다",
    ),
    "grant.80%": (
        "Grant {ref} of {subject} is 80% used",
        "{subject}의 배정 {ref}을(를) 80% 사용했습니다",
    ),
    "grant.100%": (
        "Grant {ref} of {subject} is used up",
        "{subject}의 배정 {ref}을(를) 모두 사용했습니다",
    ),
    "grant.expiring": (
        "Grant {ref} of {subject} ends soon",
        "{subject}의 배정 {ref}이(가) 곧 종료됩니다",
    ),
    "notice.": (
        "A notice about grant {ref} of {subject}",
        "{subject}의 배정 {ref}에 대한 안내가 있습니다",
    ),
}

_FOOTER = (
    "Sent by axcenter. Choose which notices you get by e-mail on the dashboard's "
    "notification settings.",
    "axcenter가 보낸 알림입니다. 메일로 받을 알림은 대시보드의 알림 설정에서 고를 수 있습니다.",
)


def kind_of(notification_kind: str) -> str | None:
    """The choosable kind a notification belongs to (None: none covers it)."""
    for name, covered in KINDS.items():
        if any(notification_kind.startswith(c) for c in covered):
            return name
    return None


def _text(kind: str) -> tuple[str, str]:
    return TEXTS.get(kind) or TEXTS["notice."]


def compose(n: NotificationOut, language: str) -> tuple[str, str]:
    """(subject, body) of a notification's e-mail, in ``language`` (ko or en)."""
    english, korean = _text(n.kind)
    ko = language == "ko"
    line = (korean if ko else english).format(subject=n.subject, ref=n.ref)
    lines = [line, n.ref]
    if n.at is not None:
        lines.append(f"{n.at:%Y-%m-%d %H:%M} UTC")
    lines += ["", _FOOTER[1 if ko else 0]]
    return f"[axcenter] {line}", "\n".join(lines) + "\n"


def _key(n: NotificationOut) -> str:
    """A notice's identity: an event's at its moment; a standing alert once per grant."""
    moment = n.at.isoformat() if n.at is not None else ""
    return f"{n.kind}|{n.ref}|{moment}"[:200]


# -- each user's choice ---------------------------------------------------------------------


def _out(row: orm.MailSettings | None, enabled: bool) -> MailSettingsOut:
    if row is None:
        return MailSettingsOut(
            address=None, language="ko", kinds=sorted(KINDS), enabled=enabled, choices=list(KINDS)
        )
    return MailSettingsOut(
        address=row.address,
        language=row.language,
        kinds=sorted(k for k in row.kinds if k in KINDS),
        enabled=enabled,
        choices=list(KINDS),
    )


def mail_settings(center: Center, who: Principal) -> MailSettingsOut:
    """The caller's choice (by default: no address, every kind, Korean)."""
    with center.store.read() as session:
        row = session.get(orm.MailSettings, who.user_id)
        return _out(row, center.settings.smtp_host is not None)


def set_mail_settings(center: Center, who: Principal, body: MailSettingsIn) -> MailSettingsOut:
    """Set the caller's address, language and kinds; notices from now on are mailed."""
    unknown = sorted(set(body.kinds) - set(KINDS))
    if unknown:
        raise InvalidInput(
            "kinds",
            "no kind {unknown!r} (kinds: {KINDS})",
            unknown=unknown[0],
            KINDS=", ".join(KINDS),
        )
    with center.store.write() as session:
        row = session.get(orm.MailSettings, who.user_id)
        now = utcnow()
        if row is None:
            row = orm.MailSettings(user_id=who.user_id, since=now, kinds=[], language="ko")
            session.add(row)
        if body.address != row.address:
            row.since = now  # a new address hears of what happens from now on
        row.address = body.address
        row.language = body.language
        row.kinds = sorted(set(body.kinds))
        session.flush()
        return _out(row, center.settings.smtp_host is not None)


# -- the thread ---------------------------------------------------------------------------


class Mailer:
    """Queues and sends e-mail notices (module docstring); ``run_once`` does one pass."""

    def __init__(self, center: Center) -> None:
        self.center = center
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.center.settings.smtp_host is None:
            return
        self._recover()
        self._thread = threading.Thread(target=self._run, name="axc-mailer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a failing pass is retried at the next one
                log.exception("sending e-mail notices failed")
            self._wake.wait(self.center.settings.mail_every_s)
            self._wake.clear()

    def _recover(self) -> None:
        """Notices whose sending a crash interrupted are due again."""
        with self.center.store.write() as session:
            session.execute(
                update(orm.MailOutbox)
                .where(orm.MailOutbox.status == "sending")
                .values(status="queued", next_at=utcnow())
            )

    def run_once(self, now: datetime | None = None) -> tuple[int, int]:
        """Queue new notices, then send those due: (queued, sent)."""
        return self.queue(now), self.send_due(now)

    def queue(self, now: datetime | None = None) -> int:
        at = now or utcnow()
        with self.center.store.read() as session:
            rows = session.execute(
                select(orm.MailSettings, orm.User)
                .join(orm.User, orm.User.id == orm.MailSettings.user_id)
                .where(orm.MailSettings.address.is_not(None), orm.User.active.is_(True))
            ).all()
            people = [
                (
                    Principal(user.id, user.name, user.organization_id, Role(user.role)),
                    choice.address,
                    choice.language,
                    set(choice.kinds),
                    choice.since,
                )
                for choice, user in rows
            ]
        queued = 0
        for who, address, language, kinds, since in people:
            assert address is not None
            for n in notifications(self.center, who, since=since, limit=200):
                if kind_of(n.kind) not in kinds or (n.at is not None and n.at <= since):
                    continue
                subject, body = compose(n, language)
                try:
                    with self.center.store.write() as session:
                        if session.get(orm.MailOutbox, (who.user_id, _key(n))) is not None:
                            continue
                        session.add(
                            orm.MailOutbox(
                                user_id=who.user_id,
                                key=_key(n),
                                kind=n.kind,
                                address=address,
                                subject=subject,
                                body=body,
                                status="queued",
                                attempts=0,
                                last_error="",
                                queued_at=at,
                                next_at=at,
                            )
                        )
                    queued += 1
                except IntegrityError:  # queued meanwhile by another pass: once is enough
                    continue
        return queued

    def send_due(self, now: datetime | None = None) -> int:
        at = now or utcnow()
        with self.center.store.read() as session:
            due = session.execute(
                select(orm.MailOutbox.user_id, orm.MailOutbox.key)
                .where(orm.MailOutbox.status == "queued", orm.MailOutbox.next_at <= at)
                .order_by(orm.MailOutbox.next_at)
                .limit(500)
            ).all()
        sent = 0
        for user_id, key in due:
            with self.center.store.write() as session:
                row = session.get(orm.MailOutbox, (user_id, key), with_for_update=True)
                if row is None or row.status != "queued":
                    continue
                row.status = "sending"
                message = self._message(row)
            try:
                self._deliver(message)
            except (OSError, smtplib.SMTPException) as exc:
                self._failed(user_id, key, f"{type(exc).__name__}: {exc}")
                continue
            with self.center.store.write() as session:
                row = session.get(orm.MailOutbox, (user_id, key))
                assert row is not None
                row.status, row.sent_at, row.attempts = "sent", utcnow(), row.attempts + 1
            sent += 1
        return sent

    def _message(self, row: orm.MailOutbox) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.center.settings.smtp_from
        message["To"] = row.address
        message["Subject"] = row.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="axcenter")
        message.set_content(row.body)  # UTF-8: Hangul as written
        return message

    def _deliver(self, message: EmailMessage) -> None:
        s = self.center.settings
        assert s.smtp_host is not None
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=20) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password or "")
            smtp.send_message(message)

    def _failed(self, user_id: str, key: str, error: str) -> None:
        with self.center.store.write() as session:
            row = session.get(orm.MailOutbox, (user_id, key))
            assert row is not None
            row.attempts += 1
            row.last_error = error[:2000]
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                log.warning("gave up mailing %s to %s: %s", key, row.address, error)
            else:
                row.status = "queued"
                pause = RETRY_FIRST_S * 2 ** (row.attempts - 1)
                row.next_at = utcnow() + timedelta(seconds=pause)
