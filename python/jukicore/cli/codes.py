"""``jukicore codes``: generate and check identifiers, allocate code blocks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jukicore import ids

from ._common import emit_json, json_option, juki_errors, progress, quiet_option

CHUNK = 10_000_000
_KINDS: dict[str, tuple[Literal["resident_code", "my_number", "lg_code"], int]] = {
    "resident-code": ("resident_code", 11),
    "my-number": ("my_number", 12),
    "lg-code": ("lg_code", 6),
}


@click.group()
def codes() -> None:
    """Resident codes, My Numbers and local government codes."""


def _open_registry(path: Path | None) -> ids.CodeRegistry:
    if path is not None and path.exists():
        return ids.CodeRegistry.load(path)
    return ids.CodeRegistry()


def _write_codes(codes_: np.ndarray[Any, Any], out: Path | None, width: int) -> None:
    if out is not None and out.suffix == ".npy":
        np.save(out, codes_)
    elif out is not None and out.suffix == ".parquet":
        pq.write_table(pa.table({"resident_code": pa.array(codes_, pa.uint64())}), out)
    else:
        text = "\n".join(ids.format_code(codes_, width).tolist())
        if out is None:
            if text:
                click.echo(text)
        else:
            out.write_text(text + ("\n" if text else ""), encoding="ascii")


@codes.command()
@click.argument("n", type=click.IntRange(min=0))
@click.option("--registry", "registry_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Registry file of every code ever issued: read if present, then updated.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the codes here (.npy, .parquet, or text: one code a line). "
                   "Default: standard output as text.")
@json_option
@quiet_option
@juki_errors
def generate(n: int, registry_path: Path | None, out: Path | None, as_json: bool,
             quiet: bool) -> None:
    """Issue N fresh resident codes, never issued before."""
    reg = _open_registry(registry_path)
    parts = []
    with progress(n, "generating", quiet) as advance:
        left = n
        while left > 0:
            k = min(CHUNK, left)
            parts.append(reg.generate(k))
            advance(k)
            left -= k
    fresh = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
    if registry_path is not None:
        reg.save(registry_path)
    if as_json:
        if out is not None:
            _write_codes(fresh, out, 11)
        emit_json({
            "generated": int(fresh.size),
            "registry_size": len(reg),
            "registry": str(registry_path) if registry_path else None,
            "out": str(out) if out else None,
            "codes": None if out is not None else ids.format_code(fresh).tolist(),
        })
    else:
        _write_codes(fresh, out, 11)
        if out is not None:
            click.echo(f"{fresh.size} codes written to {out}; registry holds {len(reg)}", err=True)


@codes.command()
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--kind", type=click.Choice(sorted(_KINDS)), default="resident-code",
              show_default=True, help="Which identifier the lines hold.")
@json_option
def check(source: Any, kind: str, as_json: bool) -> None:
    """Check identifiers, one a line, from SOURCE (a file, or - for standard input).

    Exit code 0 when every line is a valid identifier, 1 otherwise.
    """
    rust_kind, width = _KINDS[kind]
    lines = [line.strip() for line in source]
    lines = [line for line in lines if line]
    problems: list[dict[str, Any]] = []
    well_formed: list[tuple[int, str]] = []
    for i, line in enumerate(lines, start=1):
        if len(line) == width and line.isascii() and line.isdigit():
            well_formed.append((i, line))
        else:
            problems.append({"line": i, "value": line, "reason": f"not {width} ASCII digits"})
    if well_formed:
        values = [v for _, v in well_formed]
        if rust_kind == "resident_code":
            valid = ids.is_valid_resident_code(values)
        elif rust_kind == "my_number":
            valid = ids.is_valid_my_number(values)
        else:
            valid = ids.is_valid_lg_code(values)
        for (i, v), ok in zip(well_formed, valid, strict=True):
            if not ok:
                problems.append({"line": i, "value": v, "reason": "wrong check digit"})
    problems.sort(key=lambda p: p["line"])
    if as_json:
        emit_json({"checked": len(lines), "invalid": len(problems), "problems": problems})
    else:
        for p in problems:
            click.echo(f"line {p['line']}: {p['value']}: {p['reason']}")
        click.echo(f"{len(lines)} checked, {len(problems)} invalid", err=True)
    sys.exit(1 if problems else 0)


@codes.group()
def block() -> None:
    """Blocks of fresh codes: center -> prefecture -> municipality."""


@block.command("allocate")
@click.option("--registry", "registry_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The center's registry file (created if absent, then updated).")
@click.option("--holder", required=True, help="6-digit local government code of the holder.")
@click.option("-n", "n", required=True, type=click.IntRange(min=1), help="Codes in the block.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@json_option
@juki_errors
def block_allocate(registry_path: Path, holder: str, n: int, out: Path, as_json: bool) -> None:
    """Allocate a block of N fresh codes from the center's registry to HOLDER."""
    reg = _open_registry(registry_path)
    blk = reg.allocate_block(n, holder)
    blk.save(out)
    reg.save(registry_path)
    _show(blk, as_json)


@block.command("split")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--holder", required=True, help="6-digit local government code of the child.")
@click.option("-n", "n", required=True, type=click.IntRange(min=1), help="Codes to move.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@json_option
@juki_errors
def block_split(source: Path, holder: str, n: int, out: Path, as_json: bool) -> None:
    """Move N codes of the block in SOURCE into a child block for HOLDER."""
    parent = ids.CodeBlock.load(source)
    child = parent.split(n, holder)
    child.save(out)
    parent.save(source)
    _show(child, as_json)


@block.command("show")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@juki_errors
def block_show(source: Path, as_json: bool) -> None:
    """Describe the block in SOURCE."""
    _show(ids.CodeBlock.load(source), as_json)


def _show(blk: ids.CodeBlock, as_json: bool) -> None:
    info = {"block_id": blk.block_id, "holder": blk.holder, "parent_id": blk.parent_id,
            "remaining": len(blk)}
    if as_json:
        emit_json(info)
    else:
        for k, v in info.items():
            click.echo(f"{k}: {v}")


__all__ = ["codes"]
