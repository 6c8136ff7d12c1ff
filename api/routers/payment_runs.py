"""Payment runs: upload a CSV, checked exactly as `koa import payments` checks a file (the same
reader, ledger.payment_run); every bad row is answered at once and nothing is stored unless all are
good. The run is stored in one transaction."""

from __future__ import annotations

from typing import Annotated

from fastapi import File, Response, UploadFile

from api.auth import Clerk
from api.idempotency import Idem, Outcome
from api.problems import ApiProblem, field_error, problem_responses
from api.routing import resource_router
from api.schemas.payment_runs import PaymentRunRead
from api.services import Svc
from ledger.application import ImportRefused
from ledger.payment_run import RunFileError, parse_payment_run

router = resource_router("/payment-runs", "payment runs")
# Listed in full up to here (a file of a million bad rows would otherwise answer with 100 MB).
ERRORS_LISTED_MAX = 10_000

CSV_EXAMPLE = (
    "key;kind;amount;category;payment_date;service_from;service_to;document_ref;case_ref;cost_centre;text\n"
    "ZL-2025-03-000001;payment;563,00;buergergeld;28.02.2025;01.03.2025;31.03.2025;ZL-2025-03;"
    "08221BG0000001;JC-NORD;Regelbedarf März\n"
)


@router.post(
    "",
    status_code=201,
    response_model=PaymentRunRead,
    summary="Import a payment run (CSV): all rows checked, then stored at once",
    description="Columns and formats as for `koa import payments` (see the README): UTF-8, `;` or `,`, "
    f"decimal comma or dot, dates YYYY-MM-DD or DD.MM.YYYY. Example file:\n\n```\n{CSV_EXAMPLE}```",
    responses={200: {"model": PaymentRunRead, "description": "every row was already stored (a re-import)"}}
    | problem_responses(409, 413),
)
def import_run(
    file: Annotated[UploadFile, File(description="the payment run, CSV")],
    caller: Clerk,
    idem: Idem,
    svc: Svc,
) -> Response:
    data = file.file.read()  # within the upload limit (KOA_UPLOAD_BYTES_MAX), enforced while receiving

    def action() -> Outcome:
        ledger = svc.books.ledger
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise _refused(422, "file", f"not UTF-8 (byte {e.start})") from None
        try:
            parsed = parse_payment_run(text, ledger.catalogue)
        except RunFileError as e:
            raise _refused(422, "file", str(e)) from None
        if parsed.errors:
            rows = len({e.line for e in parsed.errors})
            errors = [field_error(e.field, e.reason, "file", line=e.line) for e in parsed.errors]
            raise _listed(
                422, "validation", "Invalid rows", f"{len(parsed.errors)} errors in {rows} rows", errors
            )
        try:
            result = ledger.import_bookings(parsed.contents, recorded_by=caller.user)
        except ImportRefused as e:
            errors = [
                field_error(c.error.field or "key", c.error.reason, "file", line=parsed.lines[c.index])
                for c in e.conflicts
            ]
            raise _listed(
                409, "rows-refused", "Rows refused", f"{len(e.conflicts)} rows refused", errors
            ) from None
        svc.view.poke()
        body = PaymentRunRead(
            rows=len(parsed.contents),
            created=result.created,
            unchanged=result.unchanged,
            last_position=result.last_notification_id,
        )
        return (201 if result.created else 200), body, {}

    return idem.run(data, action)


def _refused(status: int, field: str, reason: str) -> ApiProblem:
    return ApiProblem(
        status,
        "validation",
        "Invalid file",
        f"{field}: {reason}; nothing was imported",
        errors=[field_error(field, reason, "file")],
    )


def _listed(status: int, kind: str, title: str, summary: str, errors: list[dict]) -> ApiProblem:
    more = len(errors) - ERRORS_LISTED_MAX
    detail = f"{summary}; nothing was imported" + (
        f" (the first {ERRORS_LISTED_MAX} are listed)" if more > 0 else ""
    )
    return ApiProblem(status, kind, title, detail, errors=errors[:ERRORS_LISTED_MAX])
