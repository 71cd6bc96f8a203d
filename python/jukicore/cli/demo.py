"""``jukicore demo``: jukicore's main job on the embedded default (SQLite), end to end."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from ._common import emit_json, json_option, juki_errors, quiet_option, stage_progress


@click.command()
@click.option("--population", default=100_000, show_default=True, type=click.IntRange(min=1),
              help="Residents of the synthetic municipality.")
@click.option("--notifications", default=2_000, show_default=True,
              type=click.IntRange(min=0), help="Notifications (届出) in the day applied.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--store", default="demo-out/register.sqlite", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite register to create (replaced if it exists).")
@json_option
@quiet_option
@juki_errors
def demo(population: int, notifications: int, seed: int, store: Path, as_json: bool,
         quiet: bool) -> None:
    """A synthetic municipality gets codes, a fresh SQLite register, and a day of notifications.

    The center allocates fresh resident codes to the prefecture, which hands a block to
    the municipality; the municipality loads its residents into a new register and
    applies a day of births, deaths, moves and other notifications.
    """
    from jukicore.register.demo import run_demo

    store.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (store, store.with_name(store.name + "-wal"),
                     store.with_name(store.name + "-shm")):
        leftover.unlink(missing_ok=True)
    with stage_progress(quiet) as progress:
        summary = run_demo(store, population=population, notifications=notifications,
                           seed=seed, day=dt.date.today(), progress=progress)
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{summary['municipality']}: {summary['residents_loaded']:,} residents in "
               f"{summary['households_loaded']:,} households loaded into {store}")
    click.echo(f"codes: center issued {summary['codes_issued_by_center']:,}; prefecture block "
               f"keeps {summary['codes_left_in_prefecture_block']:,}; municipal block keeps "
               f"{summary['codes_left_in_municipal_block']:,}")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary["notifications"].items()))
    click.echo(f"notifications: {kinds}")
    click.echo(f"applied {summary['applied']:,}, duplicates {summary['duplicates']:,}, "
               f"rejected {summary['rejected']:,}")
    counts = ", ".join(f"{k} {v:,}" for k, v in summary["counts"].items())
    click.echo(f"register now holds: {counts}")
    click.echo("seconds: " + ", ".join(f"{k} {v}" for k, v in summary["seconds"].items()))
