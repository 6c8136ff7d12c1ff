"""The KoA-VV settlement report as a file (xlsx, json or csv), built exactly as `koa export koa-vv`
builds it (ledger.cli_settlement.report_for and write_report): as of now from one snapshot of the
live view (figures and Belegliste at the position in X-Koa-Position, whatever the server's
catch-up does meanwhile), or as of a moment by a replay into a separate store. The file is written
inside report_for's context, while its snapshot is held."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.auth import Reader
from api.problems import ApiProblem, field_error, problem_responses
from api.routing import resource_router
from api.schemas.common import IsoMoment
from api.services import Svc
from ledger.cli_settlement import POSITION_MAX, report_for, write_report
from ledger.cli_support import Refused

router = resource_router("/settlement", "settlement")

MEDIA_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}


@router.get(
    "/koa-vv",
    response_class=FileResponse,
    summary="The KoA-VV settlement workbook for a quarter (cumulative from 1 January) or a year",
    responses={
        200: {
            "description": "the report; X-Koa-As-Of and X-Koa-Position name the moment and log position it shows",
            "content": {
                MEDIA_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    }
    | problem_responses(409),
)
def koa_vv(
    _: Reader,
    svc: Svc,
    year: Annotated[int, Query(ge=2005, le=2100)],
    quarter: Annotated[int | None, Query(ge=1, le=4, description="without: the whole year")] = None,
    as_of: Annotated[
        IsoMoment | None,
        Query(
            description="only events recorded up to this moment (ISO 8601; default: now); reproduces an export"
        ),
    ] = None,
    position: Annotated[
        int | None,
        Query(
            ge=1,
            le=POSITION_MAX,
            description="with as_of: only events up to this log position as well (X-Koa-Position of "
            "the export); reproduces it exactly, also when a write was in flight at its moment",
        ),
    ] = None,
    format: Literal["xlsx", "json", "csv"] = "xlsx",  # noqa: A002 - the query parameter's name
) -> FileResponse:
    tmp = Path(tempfile.mkdtemp(prefix="koa-api-export-"))
    try:
        as_of_text = as_of.isoformat() if as_of else None
        name = f"koa-vv-{year}" + (f"-Q{quarter}" if quarter else "") + f".{format}"
        try:
            with report_for(svc.books, year, quarter, as_of_text, up_to_position=position) as report:
                write_report(report, tmp / name, format)
        except Refused as e:
            raise _as_problem(str(e)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(
        tmp / name,
        media_type=MEDIA_TYPES[format],
        filename=name,
        headers={"X-Koa-As-Of": report.as_of.isoformat(), "X-Koa-Position": str(report.last_position)},
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )


def _as_problem(message: str) -> ApiProblem:
    """The CLI's refusals name an option (--year: ...); here it is the query parameter."""
    if message.startswith("--"):
        option, _, reason = message[2:].partition(": ")
        field = option.replace("-", "_")
        return ApiProblem(
            422,
            "validation",
            "Invalid input",
            f"{field}: {reason}",
            errors=[field_error(field, reason, "query")],
        )
    return ApiProblem(409, "conflict", "Refused by the books' state", message)
