"""The audit trail for administrators: a filtered page of events, and the same as CSV.

Reading the trail is for admins only (`Action.SEE_AUDIT`); a refusal is itself audited
(`audit-read`, `audit-export`), and so is every export. The CSV is streamed in batches
(keyset pagination, one short database session per batch), never held whole in memory,
and stops at `MAX_EXPORT_ROWS`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable

from aiohttp import web

from signaling.auth import current_user_who_may, request_address
from signaling.handlers.audit_schemas import (
    AuditEventOut,
    AuditFilterQuery,
    AuditListQuery,
    AuditPage,
)
from signaling.handlers.bodies import json_model, parse_query
from signaling.handlers.table import ROUTES
from signaling.keys import DATABASE
from signaling.permissions import Action
from storage import audit, users
from storage.types import utcnow

MAX_EXPORT_ROWS = 100_000
EXPORT_BATCH = 1000
CSV_NAME = "tertulia-audit.csv"
COLUMNS = tuple(AuditEventOut.model_fields)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection): such a
# cell is written with a leading single quote, which makes it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NO_STORE = {"Cache-Control": "no-store"}


def _filter(query: AuditFilterQuery) -> audit.AuditFilter:
    return audit.AuditFilter(
        user_id=query.actor,
        actor_email=users.normalize_email(query.actor_email) if query.actor_email else None,
        action=query.action,
        outcome=query.outcome,
        room_id=query.room_id,
        recording_id=query.recording_id,
        created_from=query.created_from,
        created_to=query.created_to,
    )


def event_out(row: audit.AuditRow) -> AuditEventOut:
    event = row.event
    return AuditEventOut(
        id=event.id,
        created_at=event.created_at,
        actor_id=event.user_id,
        actor_email=row.actor_email,
        actor_name=row.actor_name,
        action=event.action,
        outcome=event.outcome,  # type: ignore[arg-type]
        room_id=event.room_id,
        recording_id=event.recording_id,
        subject_user_id=event.subject_user_id,
        subject_email=row.subject_email,
        subject_name=row.subject_name,
        address=event.address,
        detail=event.detail,
    )


@ROUTES.route(
    "GET",
    "/api/admin/audit",
    summary="The audit trail, newest first, filtered (admin)",
    tag="audit",
    query=AuditListQuery,
    response=AuditPage,
)
async def list_audit(request: web.Request) -> web.Response:
    await current_user_who_may(request, Action.SEE_AUDIT, audit_as="audit-read")
    query = parse_query(request, AuditListQuery)
    async with request.app[DATABASE].session() as session:
        rows, total = await audit.search(
            session, _filter(query), limit=query.limit, offset=query.offset
        )
    page = AuditPage(
        items=[event_out(row) for row in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )
    response = json_model(page)
    response.headers.update(NO_STORE)
    return response


def safe_cell(value: object) -> str:
    """A CSV cell that no spreadsheet takes for a formula."""
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_lines(rows: Iterable[list[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
    return buffer.getvalue().encode()


@ROUTES.route(
    "GET",
    "/api/admin/audit.csv",
    summary="The audit trail as CSV, same filters, at most 100 000 rows (admin)",
    tag="audit",
    query=AuditFilterQuery,
    content_type="text/csv",
)
async def export_audit(request: web.Request) -> web.StreamResponse:
    admin = await current_user_who_may(request, Action.SEE_AUDIT, audit_as="audit-export")
    query = parse_query(request, AuditFilterQuery)
    # Up to now: events written while the file streams (this export's own row among them)
    # neither shift the batches nor make the count wrong.
    now = utcnow()
    wanted = _filter(query)
    if wanted.created_to is None or wanted.created_to > now:
        wanted = dataclasses.replace(wanted, created_to=now)
    database = request.app[DATABASE]
    async with database.session() as session:
        total = await audit.count(session, wanted)
        filters = query.model_dump(mode="json", by_alias=True, exclude_none=True)
        await audit.record(
            session,
            user_id=admin.id,
            action="audit-export",
            address=request_address(request),
            detail=f"{min(total, MAX_EXPORT_ROWS)} of {total} events; filters {filters}",
        )
    response = web.StreamResponse(
        headers={
            "Content-Disposition": f'attachment; filename="{CSV_NAME}"',
            "X-Audit-Total": str(total),
            **NO_STORE,
        }
    )
    response.content_type = "text/csv"
    response.charset = "utf-8"
    await response.prepare(request)
    await response.write(_csv_lines([list(COLUMNS)]))
    sent, after = 0, None
    while sent < MAX_EXPORT_ROWS:
        async with database.session() as session:
            batch = await audit.page_after(
                session, wanted, after, min(EXPORT_BATCH, MAX_EXPORT_ROWS - sent)
            )
        if not batch:
            break
        outs = [event_out(row).model_dump() for row in batch]
        await response.write(_csv_lines([[out[name] for name in COLUMNS] for out in outs]))
        sent += len(batch)
        after = (batch[-1].event.created_at, batch[-1].event.id)
    await response.write_eof()
    return response
