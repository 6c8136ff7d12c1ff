"""The KoA-VV settlement report as a file (xlsx, json or csv), and the Belegliste that belongs to a
workbook, built exactly as `koa export koa-vv` builds them (ledger.cli_settlement.report_for and
write_report): as of now from one snapshot of the live view (figures and Belegliste at the position
in X-Koa-Position, whatever the server's catch-up does meanwhile), or as of a moment by a replay
into a separate store. The file is written inside report_for's context, while its snapshot is held."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
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
from exports import koavv_belege
from exports.koavv_model import KoaVvReport
from exports.koavv_workbook import BELEGLISTE_SUFFIX
from ledger.cli_settlement import POSITION_MAX, export_name, report_for, write_report
from ledger.cli_support import Refused

router = resource_router("/settlement", "settlement")

MEDIA_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}

YearQuery = Annotated[int, Query(ge=2005, le=2100)]
QuarterQuery = Annotated[int | None, Query(ge=1, le=4, description="without: the whole year")]
AsOfQuery = Annotated[
    IsoMoment | None,
    Query(
        description="only events recorded up to this moment (ISO 8601; default: now); reproduces an export"
    ),
]
PositionQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=POSITION_MAX,
        description="with as_of: only events up to this log position as well (X-Koa-Position of "
        "the export); reproduces it exactly, also when a write was in flight at its moment",
    ),
]


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
    year: YearQuery,
    quarter: QuarterQuery = None,
    as_of: AsOfQuery = None,
    position: PositionQuery = None,
    format: Literal["xlsx", "json", "csv"] = "xlsx",  # noqa: A002 - the query parameter's name
) -> FileResponse:
    def write(report: KoaVvReport, path: Path) -> dict[str, str]:
        write_report(report, path, format)
        return {}

    return _report_file(svc, (year, quarter, as_of, position), f".{format}", MEDIA_TYPES[format], write)


@router.get(
    "/koa-vv/belegliste",
    response_class=FileResponse,
    summary="The Belegliste of a KoA-VV report: every booking behind its figures, with its shares",
    responses={
        200: {
            "description": "the CSV list that the workbook of the same as_of and position names by its "
            "SHA-256 ('SHA-256 der Belegliste'; also in X-Koa-Belegliste-Sha256); X-Koa-As-Of and "
            "X-Koa-Position as for the workbook",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    }
    | problem_responses(409),
)
def koa_vv_belegliste(
    _: Reader,
    svc: Svc,
    year: YearQuery,
    quarter: QuarterQuery = None,
    as_of: AsOfQuery = None,
    position: PositionQuery = None,
) -> FileResponse:
    # The list of a workbook: pass its X-Koa-As-Of and X-Koa-Position. Without them the list is of
    # the books as they are now, which may have moved on since the workbook was made.
    def write(report: KoaVvReport, path: Path) -> dict[str, str]:
        with path.open("wb") as out:
            return {"X-Koa-Belegliste-Sha256": koavv_belege.write_csv_hashed(report.belege, out)}

    return _report_file(svc, (year, quarter, as_of, position), BELEGLISTE_SUFFIX, MEDIA_TYPES["csv"], write)


def _report_file(
    svc: Svc,
    period: tuple[int, int | None, IsoMoment | None, int | None],
    suffix: str,
    media_type: str,
    write: Callable[[KoaVvReport, Path], dict[str, str]],
) -> FileResponse:
    """The file `write` makes of the report (it returns headers of its own to send with it)."""
    year, quarter, as_of, position = period
    name = export_name(year, quarter, suffix)
    tmp = Path(tempfile.mkdtemp(prefix="koa-api-export-"))
    try:
        as_of_text = as_of.isoformat() if as_of else None
        try:
            with report_for(svc.books, year, quarter, as_of_text, up_to_position=position) as report:
                try:
                    own_headers = write(report, tmp / name)
                except ValueError as e:  # the bookings read do not add up to the figures: no file
                    raise Refused(str(e)) from None
        except Refused as e:
            raise _as_problem(str(e)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(
        tmp / name,
        media_type=media_type,
        filename=name,
        headers={"X-Koa-As-Of": report.as_of.isoformat(), "X-Koa-Position": str(report.last_position)}
        | own_headers,
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
