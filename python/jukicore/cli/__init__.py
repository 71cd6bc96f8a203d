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

Logging: ``--log-level`` (default ``warning``; ``$JUKICORE_LOG_LEVEL``) and
``--log-format text|json`` (``$JUKICORE_LOG_FORMAT``), options of the ``jukicore``
group (``jukicore --log-level info --log-format json sync apply NODE``), send the
library's log records (``jukicore.*``: per step counts and timings) to standard error
as text or JSON lines (:mod:`jukicore._log`); standard output keeps only the command's
output, so ``--json`` stays parseable.
"""

from __future__ import annotations

import click

from jukicore._log import LOG_FORMATS, LOG_LEVELS, configure_logging

from ._common import JukiGroup

__all__ = ["main"]


@click.group(cls=JukiGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jukicore")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
              default="warning", show_default=True, envvar="JUKICORE_LOG_LEVEL",
              help="Log records at this level and above go to standard error "
                   "(info: counts and timings of each step). Env: JUKICORE_LOG_LEVEL.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text",
              show_default=True, envvar="JUKICORE_LOG_FORMAT",
              help="text lines, or json lines (ts, level, logger, message and the step's "
                   "fields). Env: JUKICORE_LOG_FORMAT.")
def main(log_level: str, log_format: str) -> None:
    """jukicore: the core of the Basic Resident Registration Network (Juki-net)."""
    configure_logging(log_level.lower(), log_format)


def _register() -> None:
    from . import (
        agency,
        audit,
        card,
        certificate,
        codes,
        demo,
        identity,
        move,
        node,
        operator,
        register,
        sync,
        synth,
        viewing,
    )

    main.add_command(codes.codes)
    main.add_command(synth.synth)
    main.add_command(register.register)
    main.add_command(operator.operator)
    main.add_command(node.node)
    main.add_command(sync.sync)
    main.add_command(demo.demo)
    main.add_command(audit.audit)
    main.add_command(identity.identity)
    main.add_command(card.card)
    main.add_command(certificate.certificate)
    main.add_command(viewing.viewing)
    main.add_command(agency.agency)
    main.add_command(move.move)


_register()
