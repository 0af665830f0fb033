"""``GET /api/v1/dead-letters``: what the projector parked instead of applying (poison in
the log, see docs/how-to/dead-letters.md), newest first, a page at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, cast

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from conveyor_api.schemas import Problem
from conveyor_api.service import JobService
from conveyor_db import CONNECTION_ERRORS, DatabaseUnavailable
from conveyor_db.deadletters import DeadLetter, page_dead_letters
from conveyor_events.poison import PoisonKind

router = APIRouter()

PREVIEW_BYTES = 2048
"""Bytes of a parked message shown (the table keeps up to 64 KiB; ``raw_size`` is its size)."""
MAX_PAGE = 500

Kind = PoisonKind
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}} for code in (422, 503)
}


class DeadLetterOut(BaseModel):
    seq: int = Field(description="the message's sequence in the log")
    subject: str
    job_id: str | None
    kind: Kind
    reason: str
    raw: str = Field(
        description=f"the message as text (invalid UTF-8 replaced), its first {PREVIEW_BYTES} bytes"
    )
    raw_size: int = Field(description="the message's size in bytes")
    truncated: bool
    parked_at: datetime | None

    @classmethod
    def of(cls, d: DeadLetter) -> DeadLetterOut:
        return cls(
            seq=d.seq,
            subject=d.subject,
            job_id=d.job_id,
            kind=cast(PoisonKind, d.kind),  # what the projector parks: a PoisonKind
            reason=d.reason,
            raw=d.raw[:PREVIEW_BYTES].decode("utf-8", "replace"),
            raw_size=d.raw_size,
            truncated=d.raw_size > PREVIEW_BYTES,
            parked_at=d.parked_at,
        )


class DeadLetterList(BaseModel):
    items: list[DeadLetterOut]
    next: int | None = Field(description="pass as before_seq for the next (older) page")


@router.get(
    "/dead-letters",
    response_model=DeadLetterList,
    responses=_ERRORS,
    summary="Messages of the log the projector parked, and why (newest first)",
)
async def dead_letters(
    request: Request,
    kind: Kind | None = None,
    before_seq: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> DeadLetterList:
    service: JobService = request.app.state.service
    try:
        async with service.reads.pool.acquire(timeout=5) as conn:
            found = await page_dead_letters(conn, before_seq=before_seq, limit=limit + 1, kind=kind)
    except CONNECTION_ERRORS as e:
        raise DatabaseUnavailable(str(e)) from e
    more = len(found) > limit
    found = found[:limit]
    return DeadLetterList(
        items=[DeadLetterOut.of(d) for d in found], next=found[-1].seq if more else None
    )
