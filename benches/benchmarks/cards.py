"""asv benchmarks of card PIN verification (jukicore.cards.pin): jukicore's Argon2id cost
over the HMAC against argon2-cffi's PasswordHasher defaults. benches/compare_pin.py prints
the same side by side with the ratio in one run (target: <= 150 ms a verification)."""

from __future__ import annotations

from typing import Any


class PinVerify:
    """One PIN verification."""

    params = (["jukicore", "argon2_defaults"],)
    param_names = ("hasher",)
    number = 1
    repeat = 20
    timeout = 120

    def setup(self, hasher: str) -> None:
        from argon2 import PasswordHasher

        from jukicore.cards.pin import PinKey

        key = PinKey(bytes(range(32)))
        self.check: Any
        if hasher == "jukicore":
            stored = key.hash("131016-000000001", "2580")
            self.check = lambda: key.verify(stored, "131016-000000001", "2580")
        else:
            ph = PasswordHasher()
            stored = ph.hash("2580")
            self.check = lambda: ph.verify(stored, "2580")

    def time_verify(self, hasher: str) -> None:
        self.check()
