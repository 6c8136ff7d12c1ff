"""Booking.Recorded events decoded without the library's mapper, for the hot paths that read many
(the split view's catch-up, a payment run's look-up of keys already stored).

The mapper calls a Python hook per JSON object and constructs the event; here the state is decoded
as plain JSON and the two transcodings (date_iso, datetime_iso) are undone by hand. Only for stores
without cipher or compression (plain_mapper), and only for the Recorded topic; tests hold the
attributes to the mapper's event.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from domain.booking import Booking

RECORDED_TOPIC = get_topic(Booking.Recorded)


class FastRecorded:
    """A Booking.Recorded event's attributes, decoded without the library's mapper: plain JSON
    (orjson: ~2 µs for a 660-byte state, json.loads ~8 µs) and the two transcodings by hand (the
    mapper's Python hook per dict and its event construction were most of a catch-up's time).
    Only for stores without cipher or compression."""

    __slots__ = ("__dict__",)

    def __init__(self, originator_id: Any, state: bytes) -> None:
        d = orjson.loads(state)
        d["timestamp"] = datetime.fromisoformat(d["timestamp"]["_data_"])
        d["payment_date"] = date.fromisoformat(d["payment_date"]["_data_"])
        d["service_from"] = date.fromisoformat(d["service_from"]["_data_"])
        d["service_to"] = date.fromisoformat(d["service_to"]["_data_"])
        d["originator_id"] = originator_id
        self.__dict__ = d


def plain_mapper(app: Application) -> bool:
    return app.mapper.cipher is None and app.mapper.compressor is None


def recorded_event(app: Application, originator_id: Any, state: bytes) -> Any:
    """A stored Booking.Recorded event (its version 1): FastRecorded where the mapper is plain,
    else the mapper's event. Either carries the booking's content (domain.booking.content_of)."""
    if plain_mapper(app):
        return FastRecorded(originator_id, state)
    return app.mapper.to_domain_event(StoredEvent(originator_id, 1, RECORDED_TOPIC, state))
