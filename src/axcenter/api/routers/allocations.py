"""Allocation requests, their review, and the allocations (grants) they produce."""

from __future__ import annotations

from fastapi import APIRouter, Response, UploadFile, status
from fastapi.responses import FileResponse

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import allocations as service
from axcenter.service import attachments, grants, requests
from axcenter.service.schemas import (
    AllocationListOut,
    AllocationOut,
    ApproveIn,
    AssignIn,
    AttachmentOut,
    CommentIn,
    DecisionIn,
    RequestIn,
    RequestListOut,
    RequestOut,
    ResubmitIn,
    ReviewIn,
    WarningLevel,
)

router = APIRouter(tags=["allocations"])

REQUESTS = "/allocation-requests"


@router.get(REQUESTS)
def list_requests(
    center: CenterDep,
    who: PrincipalDep,
    project: str | None = None,
    program: str | None = None,
    status: str | None = None,
) -> RequestListOut:
    """Requests the caller may read (reviewers: those assigned to them), newest first."""
    return RequestListOut(
        items=requests.list_requests(center, who, project=project, program=program, status=status)
    )


@router.post(REQUESTS, status_code=status.HTTP_201_CREATED)
def create_request(body: RequestIn, center: CenterDep, who: PrincipalDep) -> RequestOut:
    return service.create_request(center, who, body)


@router.get(REQUESTS + "/{request_id}")
def get_request(request_id: str, center: CenterDep, who: PrincipalDep) -> RequestOut:
    """A request with every step of its review (who, when, what, why)."""
    return requests.get_request(center, who, request_id)


@router.post(REQUESTS + "/{request_id}/attachments", status_code=status.HTTP_201_CREATED)
def attach(
    request_id: str, file: UploadFile, center: CenterDep, who: PrincipalDep
) -> AttachmentOut:
    """Attach a file (multipart field ``file``): a proposal, a budget sheet... (types and
    size limit: docs/accounting.md); while the request is submitted or returned."""
    return attachments.attach(center, who, request_id, file.filename or "", file.file)


@router.get(
    REQUESTS + "/{request_id}/attachments/{attachment_id}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download(
    request_id: str, attachment_id: str, center: CenterDep, who: PrincipalDep
) -> FileResponse:
    """An attachment's bytes, for those who may read the request (always as a download)."""
    out, path = attachments.open_attachment(center, who, request_id, attachment_id)
    return FileResponse(
        path,
        media_type=out.content_type,
        filename=out.filename,
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
    )


@router.delete(
    REQUESTS + "/{request_id}/attachments/{attachment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
)
def detach(request_id: str, attachment_id: str, center: CenterDep, who: PrincipalDep) -> Response:
    attachments.detach(center, who, request_id, attachment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(REQUESTS + "/{request_id}/assign")
def assign(request_id: str, body: AssignIn, center: CenterDep, who: PrincipalDep) -> RequestOut:
    return service.assign(center, who, request_id, body.reviewers)


@router.post(REQUESTS + "/{request_id}/review")
def review(request_id: str, body: ReviewIn, center: CenterDep, who: PrincipalDep) -> RequestOut:
    return service.review(center, who, request_id, body.score, body.comment, body.scores)


@router.post(REQUESTS + "/{request_id}/approve")
def approve(request_id: str, body: ApproveIn, center: CenterDep, who: PrincipalDep) -> RequestOut:
    """Approve (optionally granting less); the grant changes at once."""
    return service.approve(center, who, request_id, body)


@router.post(REQUESTS + "/{request_id}/reject")
def reject(request_id: str, body: DecisionIn, center: CenterDep, who: PrincipalDep) -> RequestOut:
    return service.reject(center, who, request_id, body.comment)


@router.post(REQUESTS + "/{request_id}/return")
def return_request(
    request_id: str, body: DecisionIn, center: CenterDep, who: PrincipalDep
) -> RequestOut:
    """Send back for changes; the organization then resubmits."""
    return service.return_request(center, who, request_id, body.comment)


@router.post(REQUESTS + "/{request_id}/resubmit")
def resubmit(request_id: str, body: ResubmitIn, center: CenterDep, who: PrincipalDep) -> RequestOut:
    return service.resubmit(center, who, request_id, body)


@router.post(REQUESTS + "/{request_id}/withdraw")
def withdraw(
    request_id: str, center: CenterDep, who: PrincipalDep, body: CommentIn | None = None
) -> RequestOut:
    return service.withdraw(center, who, request_id, body.comment if body else "")


@router.get("/allocations")
def list_allocations(
    center: CenterDep,
    who: PrincipalDep,
    project: str | None = None,
    status: str | None = None,
    warning: WarningLevel | None = None,
) -> AllocationListOut:
    """Allocations the caller may read, each with its balance and warning level."""
    return AllocationListOut(
        items=grants.list_allocations(center, who, project=project, status=status, warning=warning)
    )


@router.get("/allocations/{allocation_id}")
def get_allocation(allocation_id: str, center: CenterDep, who: PrincipalDep) -> AllocationOut:
    return grants.get_allocation(center, who, allocation_id)
