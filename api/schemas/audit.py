"""What auditors read: a booking's events, the seal chain's head and verdict."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class BookingEvent(BaseModel):
    key: str = Field(description="the booking, or its counter-booking")
    version: int
    event: str = Field(description="Recorded, Approved or Reversed")
    at: datetime = Field(description="when the event was recorded")
    who: str
    detail: str


class ChainHead(BaseModel):
    position: int = Field(description="log position of the last event")
    seal: str = Field(description="its seal (hex); POSITION:SEAL is an anchor to keep outside")
    anchor: str
    events: int


class ChainVerdict(BaseModel):
    intact: bool
    events: int = Field(description="events checked (up to the break, if any)")
    position: int = Field(description="last good position, or where the chain breaks")
    seal: str = Field(description="seal of the last good position (hex)")
    detail: str
