"""Who may do what: actors, tiers, roles and permissions (the static half of the policy).

Deny by default: an actor may do something only when one of its roles grants the
permission at the store's tier (:data:`POLICY`) *and* the actor belongs where it acts:

* at a municipality (a register), operators and the communication server (a node)
  carry the municipality's 6-digit local government code;
* at a prefecture or the center (an identity store), operators carry the node's id
  (``node_id``), and a node acts on its own store only, by its verified id;
* an agency has no place: it gets identity confirmation info at a prefecture or the
  center for what the law lists, never anything from a municipal register;
* a private party (``"private"``) is refused everything: the law forbids the private
  use of the resident code, and personal data is never theirs to read.

The dynamic half (working hours, overrides, the daily read quota, the audit of denials
and reads) is :mod:`jukicore.access.policy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from jukicore.errors import InvalidInputError, PermissionDeniedError

__all__ = [
    "ACTOR_KINDS",
    "ANYWHERE",
    "CARD_ISSUE",
    "CARD_PERMISSIONS",
    "CARD_RESET",
    "CARD_SUSPEND",
    "CARD_VERIFY",
    "CENTER",
    "CERTIFY",
    "CERT_LIST",
    "CERT_PROVIDE",
    "CONFIGURE",
    "IDENTITY_PERMISSIONS",
    "ID_APPLY",
    "ID_DISCLOSE",
    "ID_EXPORT",
    "ID_PROVIDE",
    "ID_PURPOSES",
    "ID_READ",
    "ID_RECEIVE_CODES",
    "ID_REVIEW",
    "MUNICIPALITY",
    "NOTIFY",
    "OPERATE",
    "PERMISSIONS",
    "POLICY",
    "PREFECTURE",
    "READ",
    "ROLE_PERMISSIONS",
    "SPECIAL_MOVE",
    "TIERS",
    "VIEWING_PERMISSIONS",
    "VIEW_APPROVE",
    "VIEW_LIST",
    "VIEW_PUBLISH",
    "VIEW_RECORD",
    "VIEW_REQUEST",
    "Actor",
    "Override",
    "check_permission",
    "refusal",
]

ActorKind = Literal["operator", "node", "agency", "private"]
ACTOR_KINDS: tuple[str, ...] = ("operator", "node", "agency", "private")

MUNICIPALITY = "municipality"  #: a municipality's register (市区町村)
PREFECTURE = "prefecture"  #: a prefecture's identity store (都道府県)
CENTER = "center"  #: the national center's identity store (指定情報処理機関)
TIERS: tuple[str, ...] = (MUNICIPALITY, PREFECTURE, CENTER)

# -- the register's permissions (municipality tier)
INIT = "register.init"  #: create a register
IMPORT_CODES = "register.import_codes"  #: import a block of fresh resident codes
LOAD = "register.load"  #: bulk-load residents
NOTIFY = "register.notify"  #: apply notifications (届出)
READ = "register.read"  #: query residents, households, history, notifications
EXPORT = "register.export"  #: export the whole register, read the audit log and the outbox
PURGE = "register.purge"  #: delete removed records past retention
#: issue certificates of residence (住民票の写し, 除票の写し) at the counter
CERTIFY = "certificate.issue"
#: read the record of certificates issued (who asked for whom, identity, fee)
CERT_LIST = "certificate.list"
#: answer another municipality's request for a resident's record for a wide-area
#: certificate (広域交付, jukicore.certificates.wide_area): the communication server only
CERT_PROVIDE = "certificate.provide"
#: the special move-in/out (転入転出の特例, jukicore.moves): answer the new municipality's
#: fetch of a move-out's data and its confirmation of the move-in (the node's service)
SPECIAL_MOVE = "special_move.serve"

PERMISSIONS: frozenset[str] = frozenset({INIT, IMPORT_CODES, LOAD, NOTIFY, READ, EXPORT, PURGE,
                                         CERTIFY, CERT_LIST})

# -- the counter's card permissions (municipality tier; jukicore.cards)
#: take applications, issue, hand over (activate), record continued use, void, collect
CARD_ISSUE = "card.issue"
CARD_VERIFY = "card.verify"  #: check a card's PIN (a certificate at the counter, a login)
#: reset a locked PIN, resume a suspended card: at the counter, after an identity check
CARD_RESET = "card.reset"
CARD_SUSPEND = "card.suspend"  #: suspend a card reported lost (the hotline may, anywhere)

CARD_PERMISSIONS: frozenset[str] = frozenset({CARD_ISSUE, CARD_VERIFY, CARD_RESET,
                                              CARD_SUSPEND})

#: What a role grants at EVERY municipality, not only its own: the ``hotline`` (the
#: national call center for lost cards, open day and night) suspends a card reported lost
#: for any municipality, and does nothing else anywhere.
ANYWHERE: dict[str, frozenset[str]] = {"hotline": frozenset({CARD_SUSPEND})}

# -- register viewing (住民基本台帳の一部の写しの閲覧, jukicore.viewing; municipality tier)
VIEW_REQUEST = "viewing.request"  #: record a request to view (Art. 11 or 11-2)
#: approve or refuse a recorded request: a supervisor (the mayor's delegate), never the
#: operator who recorded it (jukicore.viewing checks that)
VIEW_APPROVE = "viewing.approve"
VIEW_RECORD = "viewing.record"  #: hold a viewing: show the four items, record its time
VIEW_LIST = "viewing.list"  #: list requests and viewings (no resident's data)
VIEW_PUBLISH = "viewing.publish"  #: publish the half-year's list of viewings

VIEWING_PERMISSIONS: frozenset[str] = frozenset(
    {VIEW_REQUEST, VIEW_APPROVE, VIEW_RECORD, VIEW_LIST, VIEW_PUBLISH})
_VIEW_COUNTER = frozenset({VIEW_REQUEST, VIEW_RECORD, VIEW_LIST})

# -- the identity store's permissions (prefecture and center tiers)
ID_APPLY = "identity.apply"  #: apply a municipality's packet of changes
ID_RECEIVE_CODES = "identity.receive_codes"  #: record a code block received from the center
ID_READ = "identity.read"  #: read identity confirmation info (current, history)
ID_REVIEW = "identity.review"  #: review quarantined and rejected entries
ID_EXPORT = "identity.export"  #: whole-store reads: retired codes, code blocks
#: answer an agency's request for identity info, for a legal purpose (jukicore.identity.provide)
ID_PROVIDE = "identity.provide"
ID_DISCLOSE = "identity.disclose"  #: show a resident who received their data
ID_PURPOSES = "identity.purposes"  #: change the legal purposes table (versioned, audited)

IDENTITY_PERMISSIONS: frozenset[str] = frozenset(
    {ID_APPLY, ID_RECEIVE_CODES, ID_READ, ID_REVIEW, ID_EXPORT, ID_PROVIDE, ID_DISCLOSE,
     ID_PURPOSES})

#: Change the policy's configuration (hours, quotas) of a store: admins only, any tier.
CONFIGURE = "policy.configure"
#: Run the node's own jobs from its command line, any tier: the synchronization (export,
#: apply, status), key rotation and trust, backup and restore, code registries and
#: blocks, the audit log's verification, checkpoints and proofs. The jobs then act as the
#: node; the operator who started each is an audit entry (``node.operate``). Admins, and
#: the ``batch`` role of an account that runs the nightly jobs and nothing else.
OPERATE = "node.operate"

_UPPER_SERVER = frozenset({ID_APPLY, ID_READ, ID_REVIEW, ID_EXPORT})
#: An upper store's admin: everything but answering agencies (the ``provider`` role's)
#: and receiving code blocks (a prefecture's admin may record those).
_UPPER_ADMIN = (IDENTITY_PERMISSIONS - {ID_RECEIVE_CODES, ID_PROVIDE}) | {CONFIGURE, OPERATE}

#: The one table: (tier, actor kind, role) -> permissions. Anything not listed is denied.
POLICY: dict[tuple[str, str, str], frozenset[str]] = {
    (MUNICIPALITY, "operator", "clerk"): frozenset({NOTIFY, READ, CERTIFY}) | CARD_PERMISSIONS
    | _VIEW_COUNTER,
    (MUNICIPALITY, "operator", "supervisor"): frozenset({NOTIFY, READ, LOAD, EXPORT, CERTIFY,
                                                         CERT_LIST})
    | CARD_PERMISSIONS | VIEWING_PERMISSIONS,
    (MUNICIPALITY, "operator", "admin"): PERMISSIONS | CARD_PERMISSIONS | {CONFIGURE, OPERATE},
    (MUNICIPALITY, "operator", "batch"): frozenset({OPERATE}),
    # the lost-card hotline: suspends cards, at every municipality (ANYWHERE), nothing else
    (MUNICIPALITY, "operator", "hotline"): ANYWHERE["hotline"],
    # the municipality's communication server (CS): reads and sends what it synchronizes,
    # records acknowledgements, and imports the code blocks its prefecture sends;
    # answers other municipalities' wide-area certificate requests (広域交付) and serves
    # the special move-in/out to the municipality a move-out names (jukicore.moves),
    # checking the PIN of a card it issued that its holder presented at the other counter
    (MUNICIPALITY, "node", "cs"): frozenset({READ, EXPORT, IMPORT_CODES, CERT_PROVIDE,
                                             SPECIAL_MOVE,
                                             CARD_VERIFY}),
    (PREFECTURE, "operator", "clerk"): frozenset({ID_READ, ID_DISCLOSE}),
    (PREFECTURE, "operator", "supervisor"): frozenset({ID_READ, ID_REVIEW, ID_EXPORT,
                                                       ID_DISCLOSE}),
    (PREFECTURE, "operator", "admin"): _UPPER_ADMIN | {ID_RECEIVE_CODES},
    # an account that answers agencies' requests (their terminals, bulk verification)
    (PREFECTURE, "operator", "provider"): frozenset({ID_PROVIDE}),
    (PREFECTURE, "operator", "batch"): frozenset({OPERATE}),
    # the prefecture's server: applies its municipalities' packets, receives code blocks
    (PREFECTURE, "node", "server"): _UPPER_SERVER | {ID_RECEIVE_CODES},
    # an agency receives identity info only by a request for a legal purpose
    (PREFECTURE, "agency", "query"): frozenset({ID_PROVIDE}),
    (CENTER, "operator", "clerk"): frozenset({ID_READ, ID_DISCLOSE}),
    (CENTER, "operator", "supervisor"): frozenset({ID_READ, ID_REVIEW, ID_EXPORT,
                                                   ID_DISCLOSE}),
    (CENTER, "operator", "admin"): _UPPER_ADMIN,
    (CENTER, "operator", "provider"): frozenset({ID_PROVIDE}),
    (CENTER, "operator", "batch"): frozenset({OPERATE}),
    # (the center's server may record a code block it received back, as a prefecture does)
    (CENTER, "node", "server"): _UPPER_SERVER | {ID_RECEIVE_CODES},
    (CENTER, "agency", "query"): frozenset({ID_PROVIDE}),
}

#: The municipality tier's slice of :data:`POLICY` (actor kind, role) -> permissions.
ROLE_PERMISSIONS: dict[tuple[str, str], frozenset[str]] = {
    (kind, role): perms for (tier, kind, role), perms in POLICY.items() if tier == MUNICIPALITY
}


@dataclass(frozen=True)
class Override:
    """A supervisor's permission for another operator to act outside working hours
    (:mod:`jukicore.access.policy` checks it and audits it as ``access.override``)."""

    supervisor: Actor
    reason: str


@dataclass(frozen=True)
class Actor:
    """Someone (an operator), or something (a node, an agency, a private party), acting
    on a store. ``lg_code``: the municipality an operator or a node belongs to;
    ``node_id``: the prefecture or center node an operator belongs to (operators of an
    upper tier have no municipality); ``override``: a supervisor's out-of-hours override."""

    kind: ActorKind
    name: str
    lg_code: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    node_id: str | None = None
    override: Override | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise InvalidInputError(f"unknown actor kind {self.kind!r}")
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError("an actor needs a name")

    @classmethod
    def operator(cls, name: str, lg_code: str | None, *roles: str,
                 node_id: str | None = None) -> Actor:
        """An operator of municipality ``lg_code`` (or, with ``lg_code`` None, of the
        prefecture or center node ``node_id``); roles default to ``clerk``."""
        return cls("operator", name, lg_code, frozenset(roles or ("clerk",)), node_id)

    @classmethod
    def node(cls, name: str, lg_code: str | None, *roles: str) -> Actor:
        """A node acting by its id: a municipality's CS (``lg_code``, role ``cs``) or a
        prefecture's or the center's server (``lg_code`` None, role ``server``)."""
        return cls("node", name, lg_code, frozenset(roles), None if lg_code else name)

    @classmethod
    def agency(cls, name: str, *roles: str) -> Actor:
        """A national agency; its role defaults to ``query`` (identity info by law)."""
        return cls("agency", name, None, frozenset(roles or ("query",)))

    @classmethod
    def private(cls, name: str) -> Actor:
        """A private party: refused the resident code and everything personal."""
        return cls("private", name, None, frozenset())

    def with_override(self, supervisor: Actor, reason: str) -> Actor:
        """This actor acting under ``supervisor``'s out-of-hours override."""
        return replace(self, override=Override(supervisor, reason))

    def __str__(self) -> str:
        place = self.lg_code or self.node_id
        where = f"@{place}" if place else ""
        return f"{self.kind}:{self.name}{where}"

    def permissions(self, tier: str = MUNICIPALITY) -> frozenset[str]:
        """What this actor's roles grant at ``tier`` (nothing for a private party)."""
        out: set[str] = set()
        for role in self.roles:
            out |= POLICY.get((tier, self.kind, role), frozenset())
        return frozenset(out)


def refusal(actor: object, permission: str, tier: str, place: str) -> str | None:
    """Why ``actor`` may not do ``permission`` at ``place`` (a municipality's code, or a
    prefecture's or the center's node id) of ``tier``; None when the table allows it."""
    if not isinstance(actor, Actor):
        return "no actor given: every workflow needs one"
    if tier not in TIERS:
        return f"unknown tier {tier!r}"
    if actor.kind == "private":
        return "a private party may never use the resident code or personal data"
    if tier == MUNICIPALITY:
        if actor.lg_code != place:
            # only what a role grants everywhere (the hotline's suspension), by that role
            if actor.kind == "operator" and any(
                    permission in ANYWHERE.get(role, frozenset())
                    and permission in POLICY.get((tier, actor.kind, role), frozenset())
                    for role in actor.roles):
                return None
            return f"{actor} does not belong to municipality {place}"
    elif actor.kind == "operator" and actor.node_id != place:
        return f"{actor} does not belong to node {place}"
    elif actor.kind == "node" and actor.name != place:
        return f"{actor} is not node {place}: a node acts on its own store only"
    if permission not in actor.permissions(tier):
        roles = ", ".join(sorted(actor.roles)) or "no role"
        return f"no role of {actor} ({roles}) grants {permission} at a {tier}"
    return None


def check_permission(actor: Actor, permission: str, lg_code: str,
                     tier: str = MUNICIPALITY) -> None:
    """Raise :class:`PermissionDeniedError` unless the table lets ``actor`` do
    ``permission`` here (no hours, quota or audit: see :mod:`jukicore.access.policy`)."""
    why = refusal(actor, permission, tier, lg_code)
    if why is not None:
        raise PermissionDeniedError(f"{actor} may not {permission}: {why}")
