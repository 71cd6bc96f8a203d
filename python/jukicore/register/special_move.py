"""Where the node's server finds the special move-in/out's routes
(``jukicore.network.server.default_routes`` imports ``ROUTES`` from this module): they
live in :mod:`jukicore.moves` (docs/moves.md)."""

from __future__ import annotations

from jukicore.moves import ROUTES

__all__ = ["ROUTES"]
