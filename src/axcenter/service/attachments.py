"""Files attached to allocation requests: a proposal (PDF, HWP, Word), a budget sheet
(Excel, CSV), a figure; uploaded by those who may change the request, read by those who
may read it.

- **Limits**: at most ``Settings.attachment_max_bytes`` (10 MiB by default) per file and
  ``MAX_PER_REQUEST`` files per request; only the types of ``TYPES``, judged by the name's
  extension *and* the file's first bytes (a PDF must start ``%PDF-``), so a file cannot
  pass as another. Each refusal names the file, the limit or the types accepted.
- **When**: while the request is ``submitted`` (before review starts) or ``returned``
  (the applicant completes it); reviewers judge what was there when review began. Each
  attachment and removal is a step in the request's history.
- **Where**: ``attachments/<request>/<attachment id>`` under the data directory, which is
  the service's alone (0700, docs/security.md): files 0600, directories 0700, never named
  by what the uploader wrote. No job, whoever it runs as, can read them.
- **Durability**: the file is written to a temporary name, synced and renamed before the
  row commits; if the commit fails the file is removed. A crash between the two leaves a
  file no row names, which nobody can read (not a half-visible attachment).
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axcenter.model.access import Principal
from axcenter.model.ids import new_id
from axcenter.service.errors import Conflict, InvalidInput, NotFound
from axcenter.service.requests import STEPS, attachment_out, find_request
from axcenter.service.schemas import AttachmentOut
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "MAX_PER_REQUEST",
    "OPEN_FOR_FILES",
    "TYPES",
    "attach",
    "detach",
    "open_attachment",
]

MAX_PER_REQUEST = 20
#: the request's statuses in which files may be attached or removed
OPEN_FOR_FILES = STEPS["attach"].statuses
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class FileType:
    content_type: str
    #: the file's first bytes, one of which it must start with (empty: text, checked apart)
    magic: tuple[bytes, ...]


_ZIP = (b"PK\x03\x04",)
_OLE = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)
#: extension -> type (Korean proposals are often HWP: the Hancom formats are accepted)
TYPES: Mapping[str, FileType] = {
    "pdf": FileType("application/pdf", (b"%PDF-",)),
    "xlsx": FileType("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _ZIP),
    "docx": FileType(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", _ZIP
    ),
    "pptx": FileType(
        "application/vnd.openxmlformats-officedocument.presentationml.presentation", _ZIP
    ),
    "hwp": FileType("application/x-hwp", _OLE),
    "hwpx": FileType("application/hwp+zip", _ZIP),
    "xls": FileType("application/vnd.ms-excel", _OLE),
    "csv": FileType("text/csv", ()),
    "txt": FileType("text/plain", ()),
    "png": FileType("image/png", (b"\x89PNG\r\n\x1a\n",)),
    "jpg": FileType("image/jpeg", (b"\xff\xd8\xff",)),
    "jpeg": FileType("image/jpeg", (b"\xff\xd8\xff",)),
}


def _accepted() -> str:
    return ", ".join(sorted(TYPES))


def clean_name(filename: str) -> str:
    """The name as shown and offered for download: its last path part, without control
    characters, at most 255 characters (the extension kept)."""
    name = re.split(r"[\\/]", unicodedata.normalize("NFC", filename))[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 254 - len(ext)] + dot + ext) if dot else name[:255]
    if not name or name in (".", ".."):
        raise InvalidInput("file", "the file has no name")
    return name


def _type_of(name: str) -> FileType:
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    kind = TYPES.get(ext)
    if kind is None:
        raise InvalidInput(
            "file",
            "{name}: files of this type are not accepted (accepted: {accepted})",
            name=name,
            accepted=_accepted(),
        )
    return kind


def _check_content(name: str, kind: FileType, head: bytes) -> None:
    if kind.magic:
        if not any(head.startswith(m) for m in kind.magic):
            raise InvalidInput(
                "file",
                "{name} is not a {content_type} file: its content says otherwise",
                name=name,
                content_type=kind.content_type,
            )
        return
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the end of the sample
            raise InvalidInput("file", "{name} is not UTF-8 text", name=name) from None
    if b"\x00" in head:
        raise InvalidInput("file", "{name} is not text: it holds NUL bytes", name=name)


def _may_change(
    session: Session, who: Principal, request_id: str, *, lock: bool
) -> orm.AllocationRequest:
    row, _ = find_request(session, who, request_id, "request.change", lock=lock)
    if row.status not in OPEN_FOR_FILES:
        raise Conflict(
            (
                "request {request_id} is {stage}: files are attached while it is "
                "submitted (before review) or returned for changes"
            ),
            request_id=request_id,
            stage=row.status,
        )
    return row


def _count(session: Session, request_id: str) -> int:
    return int(
        session.scalar(select(func.count()).where(orm.RequestAttachment.request_id == request_id))
        or 0
    )


def _folder(center: Center, request_id: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_]+", request_id):
        raise NotFound("no request {request_id!r}", request_id=request_id)
    return center.settings.attachments_dir / request_id


def attach(
    center: Center, who: Principal, request_id: str, filename: str, source: BinaryIO
) -> AttachmentOut:
    """Attach the file read from ``source`` (named ``filename`` by the uploader)."""
    name = clean_name(filename)
    kind = _type_of(name)
    limit = center.settings.attachment_max_bytes
    # who may, and whether there is room, before a byte is written
    with center.store.read() as session:
        _may_change(session, who, request_id, lock=False)
        if _count(session, request_id) >= MAX_PER_REQUEST:
            raise Conflict(
                ("request {request_id} has {MAX_PER_REQUEST} files already: remove one first"),
                request_id=request_id,
                MAX_PER_REQUEST=MAX_PER_REQUEST,
            )
    folder = _folder(center, request_id)
    folder.mkdir(mode=0o700, exist_ok=True)
    attachment_id = new_id("att")
    final = folder / attachment_id
    temporary = folder / f".{attachment_id}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            head = b""
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise InvalidInput(
                        "file",
                        "{name} is larger than the {mib:g} MiB a file may be",
                        name=name,
                        mib=limit / (1 << 20),
                    )
                if len(head) < 512:
                    head += chunk[: 512 - len(head)]
                digest.update(chunk)
                out.write(chunk)
            if size == 0:
                raise InvalidInput("file", "{name} is empty", name=name)
            _check_content(name, kind, head)
            out.flush()
            os.fsync(out.fileno())
        os.rename(temporary, final)
        _sync_dir(folder)
        with center.store.write() as session:
            row = _may_change(session, who, request_id, lock=True)
            if _count(session, request_id) >= MAX_PER_REQUEST:
                raise Conflict(
                    ("request {request_id} has {MAX_PER_REQUEST} files already: remove one first"),
                    request_id=request_id,
                    MAX_PER_REQUEST=MAX_PER_REQUEST,
                )
            now = utcnow()
            attachment = orm.RequestAttachment(
                id=attachment_id,
                request_id=request_id,
                filename=name,
                content_type=kind.content_type,
                size_bytes=size,
                sha256=digest.hexdigest(),
                uploaded_by=who.user_id,
                uploaded_at=now,
            )
            session.add(attachment)
            _step(session, who, row, "attached", name)
            session.flush()
            return attachment_out(attachment, who.name)
    except BaseException:
        temporary.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
        raise


def _step(
    session: Session, who: Principal, row: orm.AllocationRequest, action: str, name: str
) -> None:
    now = utcnow()
    session.add(
        orm.RequestEvent(
            request_id=row.id, at=now, actor_id=who.user_id, action=action, comment=name
        )
    )
    row.updated_at = now


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _find(session: Session, request_id: str, attachment_id: str) -> orm.RequestAttachment:
    row = session.get(orm.RequestAttachment, attachment_id)
    if row is None or row.request_id != request_id:
        raise NotFound(
            "request {request_id} has no attachment {attachment_id!r}",
            request_id=request_id,
            attachment_id=attachment_id,
        )
    return row


def open_attachment(
    center: Center, who: Principal, request_id: str, attachment_id: str
) -> tuple[AttachmentOut, Path]:
    """An attachment and its file, for those who may read the request (404, then 403)."""
    with center.store.read() as session:
        find_request(session, who, request_id, "request.read", lock=False)
        row = _find(session, request_id, attachment_id)
        uploader = session.get(orm.User, row.uploaded_by)
        out = attachment_out(row, uploader.name if uploader else "?")
    path = _folder(center, request_id) / row.id
    if not path.is_file():
        raise NotFound(
            "the file of attachment {attachment_id} is missing on the server",
            attachment_id=attachment_id,
        )
    return out, path


def detach(center: Center, who: Principal, request_id: str, attachment_id: str) -> None:
    """Remove an attachment (while files may be attached); the history keeps its name."""
    with center.store.write() as session:
        row = _may_change(session, who, request_id, lock=True)
        attachment = _find(session, request_id, attachment_id)
        name = attachment.filename
        session.delete(attachment)
        _step(session, who, row, "detached", name)
    (_folder(center, request_id) / attachment_id).unlink(missing_ok=True)
