"""``jukicore demo``: jukicore's main job on the embedded default, end to end."""

from __future__ import annotations

import time
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.parquet as pq

from jukicore import ids

from ._common import emit_json, json_option, juki_errors, quiet_option


@click.command()
@click.option("--population", default=100_000, show_default=True, type=click.IntRange(min=1),
              help="Residents of the synthetic municipality.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--out", default="demo-out", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the center's registry, the blocks and the municipality.")
@json_option
@quiet_option
@juki_errors
def demo(population: int, seed: int, out: Path, as_json: bool, quiet: bool) -> None:
    """Allocate codes center -> prefecture -> municipality and register a synthetic town."""
    from jukicore import synth

    out.mkdir(parents=True, exist_ok=True)
    steps: dict[str, float] = {}
    t = time.perf_counter()
    muni = synth.synthesize_municipality(population, seed=seed)
    steps["synthesize"] = time.perf_counter() - t

    t = time.perf_counter()
    center = ids.CodeRegistry()
    pref_block = center.allocate_block(2 * population, _prefecture_holder(muni.lg_code))
    muni_block = pref_block.split(population + population // 10, muni.lg_code)
    codes = muni_block.take(muni.residents.num_rows)
    residents = muni.residents.append_column("resident_code", pa.array(codes, pa.uint64()))
    steps["allocate codes"] = time.perf_counter() - t

    t = time.perf_counter()
    center.save(out / "center-registry.bin")
    pref_block.save(out / "prefecture.block")
    muni_block.save(out / f"{muni.lg_code}.block")
    synth.write_parquet(muni, out / "municipality")
    pq.write_table(residents, out / "municipality" / "residents_with_codes.parquet")
    steps["write"] = time.perf_counter() - t

    assert ids.is_valid_resident_code(codes).all()
    summary = {
        "municipality": f"{muni.prefecture}{muni.name}",
        "lg_code": muni.lg_code,
        "residents": muni.residents.num_rows,
        "households": muni.households.num_rows,
        "codes_issued_by_center": len(center),
        "codes_left_in_prefecture_block": len(pref_block),
        "codes_left_in_municipal_block": len(muni_block),
        "out": str(out),
        "seconds": {k: round(v, 3) for k, v in steps.items()},
    }
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"{summary['municipality']} ({muni.lg_code}): "
                   f"{summary['residents']:,} residents in {summary['households']:,} households")
        click.echo(f"center issued {len(center):,} codes; prefecture block keeps "
                   f"{len(pref_block):,}; municipal block keeps {len(muni_block):,}")
        click.echo("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in steps.items()))
        click.echo(f"written to {out}/")


def _prefecture_holder(lg_code: str) -> str:
    body = int(lg_code[:2]) * 1000
    return f"{body:05d}{ids.lg_code_check_digit(body)}"
