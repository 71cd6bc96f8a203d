"""The ``jukicore`` command line.

Conventions: ``--help`` on every command; exit code 0 on success, 1 when the
work failed (a :class:`jukicore.JukiError`), 2 on a usage error; ``--json``
prints machine-readable output on standard output; long work shows a progress
bar on standard error (hidden when standard error is not a terminal, or with
``--quiet``).

Errors are caught in one place, :class:`jukicore.cli._common.JukiGroup` (the
class of ``main``), for every command: ``error: <message>`` and exit 1 for a
:class:`jukicore.JukiError`, an ``OSError`` (as a file error naming the path),
a non-UTF-8 input or an out-of-range number; exit 2 for usage errors; an
unexpected exception (a bug) prints one line and a hint and exits 1.
"""

from __future__ import annotations

import click

from ._common import JukiGroup

__all__ = ["main"]


@click.group(cls=JukiGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jukicore")
def main() -> None:
    """jukicore: the core of the Basic Resident Registration Network (Juki-net)."""


def _register() -> None:
    from . import codes, demo, node, register, sync, synth

    main.add_command(codes.codes)
    main.add_command(synth.synth)
    main.add_command(register.register)
    main.add_command(node.node)
    main.add_command(sync.sync)
    main.add_command(demo.demo)


_register()
