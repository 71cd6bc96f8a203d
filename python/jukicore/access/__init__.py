"""Who may do what: actors (operators, nodes, agencies), roles and the deny-by-default
permission check every workflow calls first (:mod:`.actors`)."""

from __future__ import annotations

from .actors import Actor, check_permission

__all__ = ["Actor", "check_permission"]
