"""Liveness: the only endpoint without a token (for load balancers and the benchmark's baseline)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/health", response_model=Health, summary="The server is up")
async def health() -> Health:
    return Health(status="ok")
