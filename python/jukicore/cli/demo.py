"""``jukicore demo``: jukicore's main job on the embedded default (SQLite), end to end."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import click

from jukicore._files import write_atomic
from jukicore.errors import ConflictError

from ._common import emit_json, json_option, juki_errors, quiet_option, stage_progress

#: The file every demo writes into its workdir: only such a directory is ever replaced.
MARKER = ".jukicore-demo"


def _prepare_workdir(workdir: Path) -> None:
    """Create ``workdir``, or empty it when it is a previous demo's output; never delete a
    directory the demo did not create (ConflictError, nothing touched)."""
    if workdir.is_symlink():
        raise ConflictError(f"{workdir} is a symbolic link; give the demo a real directory")
    if workdir.exists():
        if not workdir.is_dir():
            raise ConflictError(f"{workdir} exists and is not a directory")
        marker = workdir / MARKER
        if any(workdir.iterdir()):
            if marker.is_symlink() or not marker.is_file():
                raise ConflictError(
                    f"{workdir} is not empty and is not a previous demo's output (no {MARKER} "
                    f"file); refusing to delete it: choose another --workdir")
            shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_atomic(workdir / MARKER, b"jukicore demo output: replaced by the next demo run\n")


@click.command()
@click.option("--population", default=100_000, show_default=True, type=click.IntRange(min=1),
              help="Residents of the synthetic municipality.")
@click.option("--notifications", default=2_000, show_default=True,
              type=click.IntRange(min=0), help="Notifications (届出) in the day applied.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--workdir", default="demo-out", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the three nodes: created, or replaced only when it is "
                   "empty or a previous demo's output (marked by a .jukicore-demo file).")
@click.option("--transport", type=click.Choice(["network", "files"]), default="network",
              show_default=True,
              help="network: each node serves on loopback (mutual TLS 1.3) and the packets "
                   "travel over it; files: copied into the inboxes (an air-gapped site).")
@json_option
@quiet_option
@juki_errors
def demo(population: int, notifications: int, seed: int, workdir: Path, transport: str,
         as_json: bool, quiet: bool) -> None:
    """A whole night of the network on SQLite: a municipality, its prefecture, the center.

    The center sends fresh resident codes to the prefecture, which hands a block to a
    synthetic municipality; the municipality loads its residents into a new register,
    applies a day of births, deaths, moves and other notifications; at its counter a
    resident receives a My Number card with a PIN and, identified by card and PIN, a
    signed certificate of residence of their household (certificate.pdf, verified
    offline); then it sends the identity-info changes, encrypted and signed, to the
    prefecture and the center, which apply them and send back signed acknowledgements.
    Each node serves on loopback with mutual TLS 1.3 and every packet travels over the
    network (``--transport files``: copied by hand, as an air-gapped site does).
    """
    from jukicore.network.night import run_night

    _prepare_workdir(workdir)
    with stage_progress(quiet) as progress:
        summary = run_night(workdir, population=population, notifications=notifications,
                            seed=seed, day=dt.date.today(), progress=progress,
                            transport=transport)
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{summary['municipality']}: {summary['residents_loaded']:,} residents in "
               f"{summary['households_loaded']:,} households, codes from a block the center "
               f"sent through the prefecture ({summary['codes_issued_by_center']:,} issued)")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary["notifications"].items()))
    click.echo(f"a day of notifications: {kinds}")
    click.echo(f"applied {summary['applied']:,}, duplicates {summary['duplicates']:,}, "
               f"rejected {summary['rejected']:,}")
    desk = summary["counter"]
    click.echo(f"at the counter: My Number card {desk['card_id']} issued with its PIN; a "
               f"certificate of residence of {desk['members']} member(s) asked for with the "
               f"card, fee {desk['fee']} yen, signed -> {desk['certificate']}, verified "
               f"offline by {desk['verified_by']}'s trust store")
    for node, sent in summary["sent"].items():
        click.echo(f"to {node} ({summary['transport']}): packet of {sent['packet_bytes']:,}"
                   f" bytes, {sent['entries']:,} changes, acknowledged up to entry "
                   f"{sent['acknowledged']:,}")
    records = ", ".join(f"{k} {v:,}" for k, v in summary["identity_records"].items())
    click.echo(f"identity records held: {records}")
    click.echo("seconds: " + ", ".join(f"{k} {v}" for k, v in summary["seconds"].items()))
    click.echo(f"nodes in {workdir}/")
