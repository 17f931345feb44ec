"""GPU models and their specs (the ``gpus`` collection, small and public to users)."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from clockwork_web.errors import NotFound

GPU_PROJECTION: dict[str, int] = {"_id": 0}


def list_gpus(db: Database[Any], limit: int = 1000) -> list[dict[str, Any]]:
    """Every GPU model, by name."""
    return list(db.gpus.find({}, GPU_PROJECTION).sort("name", 1).limit(limit))


def get_gpu(db: Database[Any], name: str) -> dict[str, Any]:
    """One GPU model's specs; NotFound if unknown."""
    doc = db.gpus.find_one({"name": name}, GPU_PROJECTION)
    if doc is None:
        raise NotFound(f"no GPU model {name!r}")
    return doc
