"""Database names within PostgreSQL's limit of 63 characters."""
from __future__ import annotations

import hashlib

MAX_NAME = 63  # PostgreSQL's identifier limit; longer names end in a short hash instead


def short_name(name: str) -> str:
    if len(name) <= MAX_NAME:
        return name
    return f"{name[:MAX_NAME - 9]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
