"""Who may do what: actors (operators, nodes, agencies, private parties), tiers, roles
and the one deny-by-default policy every workflow goes through (:mod:`.actors`: the
table; :mod:`.policy`: hours, overrides, quotas, the audit of denials and reads)."""

from __future__ import annotations

from .actors import Actor, Override, check_permission

__all__ = ["Actor", "Override", "check_permission"]
