"""Who is acting: a signed-in user, a token's owner, or the system itself."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    id: int | None
    username: str = ""
    name: str = ""
    department_id: int | None = None
    roles: frozenset = field(default_factory=frozenset)
    superuser: bool = False
    language: str | None = None

    @classmethod
    def system(cls) -> "Actor":
        """The engine acting for itself (CLI, imports run by an admin, automations)."""
        return cls(id=None, username="system", name="System", superuser=True)

    @property
    def is_system(self) -> bool:
        return self.id is None and self.superuser
