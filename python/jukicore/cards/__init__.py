"""The counter's cards: resident register cards (住基カード) and My Number cards
(個人番号カード), their lifecycle, PINs and fees (docs/cards.md).

* :class:`Cards` works on one municipality's :class:`~jukicore.register.Register` with the
  node's :class:`PinKey` (kept outside the store: :func:`create_pin_key`).
* :mod:`jukicore.cards.rules`: kinds, states and the transitions the law allows, expiry
  dates (ages by 年齢計算ニ関スル法律 and 民法143条), fees by default.
* Cards follow their holders' records in the register's own transactions
  (:mod:`jukicore.cards.follow`): a death, a replaced My Number or a code change voids.
"""

from __future__ import annotations

from . import rules
from ._schema import CARD_SCHEMA
from .pin import PinKey, create_pin_key
from .rules import IDENTITY_DOCUMENTS, KINDS, STATES, TRANSITIONS, VOID_REASONS
from .store import MAX_FAILURES, Cards

__all__ = ["CARD_SCHEMA", "IDENTITY_DOCUMENTS", "KINDS", "MAX_FAILURES", "STATES",
           "TRANSITIONS", "VOID_REASONS", "Cards", "PinKey", "create_pin_key", "rules"]
