"""What the record service refuses with. Each error changes nothing and says why, in the
reader's language; pages, the API and the CLI map them to 403, 404, 409 and 422."""
from __future__ import annotations

from ..i18n import Message


class RecordError(Exception):
    status = 400

    def __init__(self, message: Message | str = "", **params):
        self.msg = message if isinstance(message, Message) else Message(message, **params)
        super().__init__(self.msg.text("en"))

    def text(self, lang=None) -> str:
        return self.msg.text(lang)


class NotFound(RecordError):
    status = 404


class Forbidden(RecordError):
    status = 403


class Conflict(RecordError):
    """A stale update: someone else changed the record since it was read."""

    status = 409

    def __init__(self, message, *, fields=(), current=None, **params):
        super().__init__(message, **params)
        self.fields = tuple(fields)      # fields changed meanwhile
        self.current = current           # the record as it is now


class ValidationError(RecordError):
    """Every problem of a write at once: per field, and for the record as a whole."""

    status = 422

    def __init__(self, fields: dict | None = None, errors: list | None = None, *, row: int | None = None):
        self.fields = {k: list(v) for k, v in (fields or {}).items()}   # field -> [Message]
        self.errors = list(errors or [])                                # [Message]
        self.row = row
        first = next(iter(self.errors), None) or next((m[0] for m in self.fields.values() if m), None)
        super().__init__(first or Message("invalid record"))

    def as_dict(self, lang=None) -> dict:
        return {"fields": {k: [m.text(lang) for m in v] for k, v in self.fields.items()},
                "errors": [m.text(lang) for m in self.errors]}

    def __str__(self):
        parts = [f"{k}: {'; '.join(m.text('en') for m in v)}" for k, v in self.fields.items()]
        parts += [m.text("en") for m in self.errors]
        return ", ".join(parts)


class Restricted(RecordError):
    """A delete or purge refused because other records refer to this one."""

    status = 409

    def __init__(self, message, *, references=(), **params):
        super().__init__(message, **params)
        self.references = tuple(references)   # (object, id, title)


class DuplicateFound(ValidationError):
    """A warning duplicate rule matched: the write goes ahead only when the caller confirms
    (allow_duplicates=True). `matches` are duplicates.Match objects."""

    status = 409

    def __init__(self, fields: dict, matches: list):
        super().__init__(fields)
        self.matches = matches
