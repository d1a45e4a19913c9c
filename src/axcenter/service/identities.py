"""Who jobs run as, and where they may work (docs/security.md).

Every user's jobs run under a unix account of the user's own, with the group of the
job's project as primary group, never as root or as the service:

- ``managed`` (the default): axcenter creates the account (``PREFIX<name>``, with a
  personal group of the same number) and each project's group (``PREFIXp-<project>``)
  in its uid range, at the user's first submission; its home, the project's directory
  (``project_root/<project>``, group-owned, setgid) and the user's scratch directory
  (``scratch_root/<account>``) are made then. An account of the prefix already in the
  range and unknown to the store (an earlier life of this center, a restored backup) is
  taken over, not duplicated.
- ``mapped``: only accounts an operator mapped (``axc users map``) run jobs; sites with
  a directory service (LDAP) use this, as their accounts exist on every node.
- ``single-user``: the service cannot switch identities (it is not root); every job
  runs as its account, and only the jobs of ``Settings.single_user`` are taken.

A job's working directory must exist and lie, with ``..`` and symbolic links resolved,
under its user's home, its project's directory or its user's scratch directory (as
``sbatch --chdir``, a missing one is an error at submission). The supervisor enters it
as the job's user: permissions, not this check, are the last word.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, cast

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.orm import Session

from axcenter.executors.base import RunAs
from axcenter.model.access import Principal
from axcenter.service.access import require, user_target
from axcenter.service.audit import record
from axcenter.service.errors import Conflict, Forbidden, InvalidInput
from axcenter.service.organizations import user_by_ref
from axcenter.service.schemas import UnixAccountOut
from axcenter.store import orm

if TYPE_CHECKING:
    from axcenter.service.center import Center
    from axcenter.settings import Settings

__all__ = [
    "IDENTITY_TABLES",
    "Identity",
    "check_workdir",
    "ensure_waiting_identities",
    "identity_for",
    "map_account",
]

#: what an identity is read from; a commit that changes one drops the cached ones
IDENTITY_TABLES = ("unix_accounts", "project_groups")

ACCOUNTS = cast(Table, orm.UnixAccount.__table__)
GROUPS = cast(Table, orm.ProjectGroup.__table__)

_UNSAFE = re.compile(r"[^a-z0-9_-]+")
#: unix names are at most 32 characters
_NAME_MAX = 32


class _Account(NamedTuple):
    name: str
    uid: int
    gid: int  # the personal group
    home: str


class _Group(NamedTuple):
    name: str
    gid: int


@dataclass(frozen=True, slots=True)
class Identity:
    """Who one user's jobs in one project run as, and where they may work."""

    run_as: RunAs | None  # None: single-user mode (the service's own account)
    roots: tuple[str, ...]  # resolved directories its jobs may work in
    home: str  # the default working directory ("" in single-user mode)
    #: made by this call, in a transaction not yet committed: not to be cached before
    new: bool = False


def identity_for(
    settings: Settings,
    db: Session | Connection,
    user: tuple[str, str],
    project: tuple[str, str],
) -> Identity:
    """The identity of ``user`` (id, name) in ``project`` (id, name), made now in managed
    mode if it is the user's first submission. Raises ``Forbidden`` when this center
    cannot run the user's jobs (mapped mode without a mapping, single-user mode)."""
    if settings.identities == "single-user":
        if user[1] != settings.single_user:
            raise Forbidden(
                ("this center runs in single-user mode: only the jobs of {single_user} run here"),
                single_user=settings.single_user or "its single user",
            )
        return Identity(run_as=None, roots=(), home="")
    found = db.execute(
        select(ACCOUNTS.c.name, ACCOUNTS.c.uid, ACCOUNTS.c.gid, ACCOUNTS.c.home).where(
            ACCOUNTS.c.user_id == user[0]
        )
    ).one_or_none()
    found_group = db.execute(
        select(GROUPS.c.name, GROUPS.c.gid).where(GROUPS.c.project_id == project[0])
    ).one_or_none()
    account = _Account(*found) if found is not None else None
    group = _Group(*found_group) if found_group is not None else None
    if settings.identities == "mapped":
        if account is None:
            raise Forbidden(
                (
                    "{user} has no unix account on this center: an operator maps one (axc "
                    "users map {user} ACCOUNT)"
                ),
                user=user[1],
            )
        gid = group.gid if group is not None else account.gid
        run_as = RunAs(account.name, account.uid, gid, (account.gid,), account.home)
        return Identity(run_as, _roots(settings, run_as, project[1]), account.home)
    new = account is None or group is None
    if account is None:
        account = _new_account(settings, db, user[1], user[0])
    else:
        _ensure_account(*account)
    if group is None:
        group = _new_group(settings, db, project[1], project[0])
    else:
        _ensure_group(*group)
    run_as = RunAs(account.name, account.uid, group.gid, (account.gid,), account.home)
    _ensure_dirs(settings, run_as, project[1])
    return Identity(run_as, _roots(settings, run_as, project[1]), account.home, new)


def check_workdir(identity: Identity, requested: str | None) -> str | None:
    """The working directory a job of ``identity`` gets for ``requested``: its home when
    none is given (None in single-user mode: the engine makes one per job)."""
    if requested is None:
        return identity.home or None
    if not os.path.isabs(requested):
        raise InvalidInput(
            "workdir", "must be an absolute path, got {requested!r}", requested=requested
        )
    real = os.path.realpath(requested)
    if not os.path.isdir(real):
        raise InvalidInput(
            "workdir",
            (
                "{requested} is not a directory on this center: create it first (as with "
                "sbatch --chdir, a missing directory is an error)"
            ),
            requested=requested,
        )
    if identity.run_as is None:
        return real
    if not any(real == root or real.startswith(root.rstrip("/") + "/") for root in identity.roots):
        raise InvalidInput(
            "workdir",
            "{requested} is outside the directories your jobs may use ({roots})",
            requested=requested,
            roots=", ".join(identity.roots),
        )
    return real


def ensure_waiting_identities(center: Center) -> int:
    """Managed mode: make the identities of the users whose jobs wait without one (jobs
    submitted before this version, or before their user's account was removed), so they
    start instead of failing at launch. Returns how many (user, project) pairs it made."""
    if center.settings.identities != "managed":
        return 0
    jobs = orm.Job.__table__
    users, projects = orm.User.__table__, orm.Project.__table__
    waiting = (
        select(jobs.c.user_id, users.c.name, jobs.c.project_id, projects.c.name)
        .distinct()
        .join(users, users.c.id == jobs.c.user_id)
        .join(projects, projects.c.id == jobs.c.project_id)
        .outerjoin(ACCOUNTS, ACCOUNTS.c.user_id == jobs.c.user_id)
        .outerjoin(GROUPS, GROUPS.c.project_id == jobs.c.project_id)
        .where(
            jobs.c.state.in_(("pending", "admitted")),
            (ACCOUNTS.c.user_id.is_(None)) | (GROUPS.c.project_id.is_(None)),
        )
    )
    with center.store.write() as session:
        pairs = session.execute(waiting).all()
        for user_id, user_name, project_id, project_name in pairs:
            identity_for(center.settings, session, (user_id, user_name), (project_id, project_name))
    return len(pairs)


def map_account(center: Center, who: Principal, ref: str, account: str) -> UnixAccountOut:
    """Run ``ref``'s jobs as the existing unix ``account`` from now on (operators only;
    audited). Refused for root and system accounts (uid below 1000), and for an account
    another user's jobs already run as."""
    try:
        found = pwd.getpwnam(account)
    except KeyError:
        raise InvalidInput(
            "account", "no unix account named {account!r} on this host", account=account
        ) from None
    if found.pw_uid < 1000 or found.pw_gid == 0:
        raise InvalidInput(
            "account",
            "{account} is root or a system account (uid {pw_uid}): never",
            account=account,
            pw_uid=found.pw_uid,
        )
    with center.store.write() as session:
        user = user_by_ref(session, ref)
        require(who, "user.role", user_target(user), ref)
        other = session.execute(
            select(ACCOUNTS.c.user_id).where(
                (ACCOUNTS.c.uid == found.pw_uid) & (ACCOUNTS.c.user_id != user.id)
            )
        ).first()
        if other is not None:
            raise Conflict("{account} already runs another user's jobs", account=account)
        row = session.get(orm.UnixAccount, user.id)
        before = None if row is None else {"account": row.name, "uid": row.uid}
        if row is None:
            row = orm.UnixAccount(user_id=user.id)
            session.add(row)
        row.name, row.uid, row.gid, row.home = account, found.pw_uid, found.pw_gid, found.pw_dir
        row.managed = False
        after = {"account": account, "uid": found.pw_uid}
        record(
            session, who, "user.unix_account", "user", user.id, {"before": before, "after": after}
        )
        return UnixAccountOut(
            user=user.name, account=account, uid=row.uid, gid=row.gid, home=row.home, managed=False
        )


# -- managed accounts ---------------------------------------------------------------------


def _unix_name(prefix: str, name: str, suffix: str = "") -> str:
    safe = _UNSAFE.sub("-", name.lower()).strip("-") or "user"
    return (prefix + safe)[: _NAME_MAX - len(suffix)] + suffix


def _taken_ids(db: Session | Connection) -> set[int]:
    return set(db.execute(select(ACCOUNTS.c.uid)).scalars()) | set(
        db.execute(select(GROUPS.c.gid)).scalars()
    )


def _free_id(settings: Settings, taken: set[int]) -> int:
    """The lowest number of the range that neither the store nor the host uses, as a
    uid or as a gid (a managed account's personal group has its uid's number)."""
    for n in settings.uids:
        if n in taken:
            continue
        try:
            pwd.getpwuid(n)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(n)
            continue
        except KeyError:
            return n
    raise Forbidden(
        ("no free uid left in this center's range {uid_range}: an operator widens it"),
        uid_range=settings.uid_range,
    )


def _adoptable(settings: Settings, number: int, taken: set[int]) -> bool:
    return number in settings.uids and number not in taken


def _new_account(
    settings: Settings, db: Session | Connection, user_name: str, user_id: str
) -> _Account:
    taken = _taken_ids(db)
    names = set(db.execute(select(ACCOUNTS.c.name)).scalars())
    name = _unix_name(settings.unix_prefix, user_name)
    if name in names:  # another user's name folds to the same: number this one
        name = _unix_name(settings.unix_prefix, user_name, f"-{len(names)}")
    try:
        found = pwd.getpwnam(name)
    except KeyError:
        uid = _free_id(settings, taken)
    else:
        if not _adoptable(settings, found.pw_uid, taken):
            raise Forbidden(
                (
                    "the unix account {name} exists and is not axcenter's (uid {pw_uid}): an "
                    "operator maps it (axc users map) or removes it"
                ),
                name=name,
                pw_uid=found.pw_uid,
            )
        uid = found.pw_uid
    home = str(settings.home_root / name)
    db.execute(
        insert(ACCOUNTS).values(
            user_id=user_id, name=name, uid=uid, gid=uid, home=home, managed=True
        )
    )
    account = _Account(name, uid, uid, home)
    _ensure_account(*account)
    return account


def _new_group(
    settings: Settings, db: Session | Connection, project_name: str, project_id: str
) -> _Group:
    taken = _taken_ids(db)
    name = _unix_name(settings.unix_prefix + "p-", project_name)
    try:
        found = grp.getgrnam(name)
    except KeyError:
        gid = _free_id(settings, taken)
    else:
        if not _adoptable(settings, found.gr_gid, taken):
            raise Forbidden("the unix group {name} exists and is not axcenter's", name=name)
        gid = found.gr_gid
    db.execute(insert(GROUPS).values(project_id=project_id, name=name, gid=gid, managed=True))
    _ensure_group(name, gid)
    return _Group(name, gid)


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Forbidden(
            "cannot create the unix identity ({argv}: {stderr})",
            argv=argv[0],
            stderr=done.stderr.strip(),
        )


def _ensure_group(name: str, gid: int) -> None:
    try:
        if grp.getgrnam(name).gr_gid == gid:
            return
    except KeyError:
        _run(["groupadd", "-g", str(gid), name])
        return
    raise Forbidden("the unix group {name} exists with another gid than {gid}", name=name, gid=gid)


def _ensure_account(name: str, uid: int, gid: int, home: str) -> None:
    """The account and its personal group exist on this host (made if missing); its
    password is locked and it has no login shell: it only runs jobs."""
    with contextlib.suppress(KeyError):
        if pwd.getpwnam(name).pw_uid == uid:
            return
        raise Forbidden(
            "the unix account {name} exists with another uid than {uid}", name=name, uid=uid
        )
    _ensure_group(name, gid)
    _run(
        [
            "useradd", "-M", "-N", "-u", str(uid), "-g", str(gid), "-d", home,
            "-s", "/usr/sbin/nologin", "-c", "axcenter job account", name,
        ]
    )  # fmt: skip


def _ensure_dirs(settings: Settings, run_as: RunAs, project_name: str) -> None:
    """The home, the project's directory and the scratch directory, made if missing."""
    _make_dir(Path(run_as.home), run_as.uid, run_as.groups[0], 0o700)
    if settings.project_root is not None:
        _make_dir(settings.project_root / project_name, 0, run_as.gid, 0o2770)
    if settings.scratch_root is not None:
        _make_dir(settings.scratch_root / run_as.user, run_as.uid, run_as.groups[0], 0o700)


def _make_dir(path: Path, uid: int, gid: int, mode: int) -> None:
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return  # the owner's now: axcenter does not take it back
    except OSError as e:
        raise Forbidden("cannot create {path}: {strerror}", path=path, strerror=e.strerror) from e
    os.chown(path, uid, gid)
    os.chmod(path, mode)  # past the umask


def _roots(settings: Settings, run_as: RunAs, project_name: str) -> tuple[str, ...]:
    roots = [run_as.home]
    if settings.project_root is not None:
        roots.append(str(settings.project_root / project_name))
    if settings.scratch_root is not None:
        roots.append(str(settings.scratch_root / run_as.user))
    return tuple(os.path.realpath(r) for r in roots)
