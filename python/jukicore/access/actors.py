"""Who may do what to a municipality's register: actors, roles, permissions.

Deny by default: an actor may do something only when one of its roles grants
the permission *and* the actor belongs to the register's municipality
(operators and nodes carry the municipality's 6-digit local government code).
Agencies get nothing from the municipal register: they receive identity
confirmation info through the prefecture and the center, never from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jukicore.errors import InvalidInputError, PermissionDeniedError

__all__ = [
    "NOTIFY",
    "PERMISSIONS",
    "READ",
    "ROLE_PERMISSIONS",
    "Actor",
    "check_permission",
]

ActorKind = Literal["operator", "node", "agency"]

INIT = "register.init"  #: create a register
IMPORT_CODES = "register.import_codes"  #: import a block of fresh resident codes
LOAD = "register.load"  #: bulk-load residents
NOTIFY = "register.notify"  #: apply notifications (届出)
READ = "register.read"  #: query residents, households, history
EXPORT = "register.export"  #: export the whole register, read the audit log and the outbox
PURGE = "register.purge"  #: delete removed records past retention

PERMISSIONS: frozenset[str] = frozenset({INIT, IMPORT_CODES, LOAD, NOTIFY, READ, EXPORT, PURGE})

#: Roles and what they grant. Anything not listed is denied.
ROLE_PERMISSIONS: dict[tuple[ActorKind, str], frozenset[str]] = {
    ("operator", "clerk"): frozenset({NOTIFY, READ}),
    ("operator", "supervisor"): frozenset({NOTIFY, READ, LOAD, EXPORT}),
    ("operator", "admin"): PERMISSIONS,
    # the municipality's communication server (CS): reads and sends what it synchronizes,
    # records acknowledgements, and imports the code blocks its prefecture sends
    ("node", "cs"): frozenset({READ, EXPORT, IMPORT_CODES}),
}


@dataclass(frozen=True)
class Actor:
    """Someone (an operator), or something (a node, an agency), acting on a register."""

    kind: ActorKind
    name: str
    lg_code: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.kind not in ("operator", "node", "agency"):
            raise InvalidInputError(f"unknown actor kind {self.kind!r}")
        if not self.name:
            raise InvalidInputError("an actor needs a name")

    @classmethod
    def operator(cls, name: str, lg_code: str, *roles: str) -> Actor:
        return cls("operator", name, lg_code, frozenset(roles or ("clerk",)))

    @classmethod
    def node(cls, name: str, lg_code: str, *roles: str) -> Actor:
        return cls("node", name, lg_code, frozenset(roles))

    @classmethod
    def agency(cls, name: str) -> Actor:
        return cls("agency", name, None, frozenset())

    def __str__(self) -> str:
        where = f"@{self.lg_code}" if self.lg_code else ""
        return f"{self.kind}:{self.name}{where}"

    def permissions(self) -> frozenset[str]:
        out: set[str] = set()
        for role in self.roles:
            out |= ROLE_PERMISSIONS.get((self.kind, role), frozenset())
        return frozenset(out)


def check_permission(actor: Actor, permission: str, lg_code: str) -> None:
    """Raise :class:`PermissionDeniedError` unless ``actor`` may do ``permission`` here."""
    if not isinstance(actor, Actor):
        raise PermissionDeniedError("no actor given: every register workflow needs one")
    if actor.lg_code != lg_code:
        raise PermissionDeniedError(
            f"{actor} does not belong to municipality {lg_code}: {permission} denied"
        )
    if permission not in actor.permissions():
        raise PermissionDeniedError(f"{actor} may not {permission}")
