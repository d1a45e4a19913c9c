"""Funding programs (calls): everyone reads them; operators and program managers manage."""

from __future__ import annotations

from fastapi import APIRouter, status

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import programs as service
from axcenter.service.schemas import ProgramIn, ProgramListOut, ProgramOut, ProgramPatchIn

router = APIRouter(tags=["programs"])


@router.get("/programs")
def list_programs(center: CenterDep, who: PrincipalDep) -> ProgramListOut:
    return ProgramListOut(items=service.list_programs(center, who))


@router.post("/programs", status_code=status.HTTP_201_CREATED)
def create_program(body: ProgramIn, center: CenterDep, who: PrincipalDep) -> ProgramOut:
    return service.create_program(center, who, body)


@router.get("/programs/{program}")
def get_program(program: str, center: CenterDep, who: PrincipalDep) -> ProgramOut:
    """A program by ``prg_`` id or name, with the won its allocations granted."""
    return service.get_program(center, who, program)


@router.patch("/programs/{program}")
def update_program(
    program: str, body: ProgramPatchIn, center: CenterDep, who: PrincipalDep
) -> ProgramOut:
    """Fields left out keep their value."""
    return service.update_program(center, who, program, body)
