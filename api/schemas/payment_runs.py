"""Payment runs: a CSV file in (the columns of `koa import payments`), counts out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PaymentRunRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"rows": 1200, "created": 1200, "unchanged": 0, "last_position": 48211}]
        }
    )

    rows: int = Field(description="bookings in the file")
    created: int = Field(description="bookings stored now (one transaction)")
    unchanged: int = Field(
        description="keys already stored with the same content (a re-import changes nothing)"
    )
    last_position: int | None = Field(
        description="log position of the last stored event; null if none was new"
    )
