"""``jukicore codes``: generate and check identifiers, allocate code blocks."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any, Literal

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jukicore._files import write_atomic
from jukicore.codes import (
    CodeBlock,
    CodeRegistry,
    allocate_block_file,
    format_code,
    is_valid_lg_code,
    is_valid_my_number,
    is_valid_resident_code,
    split_block_file,
    update_registry,
)
from jukicore.errors import ConflictError, FileError
from jukicore.network.node import CENTER

from ._common import (
    Credentials,
    LazyCredentials,
    emit_json,
    json_option,
    lg_code_arg,
    operator_options,
    optional_operator_options,
    progress,
    quiet_option,
)

CHUNK = 10_000_000
_KINDS: dict[str, tuple[Literal["resident_code", "my_number", "lg_code"], int]] = {
    "resident-code": ("resident_code", 11),
    "my-number": ("my_number", 12),
    "lg-code": ("lg_code", 6),
}


_NODE_HELP = ("The node whose operator acts (its directory, or its store's path or URI): "
              "the operator logs in there (--operator, --card ...), needs node.operate "
              "(an admin, or the batch role), and the step is an entry of its audit log.")
_AT_CENTER = " The center: codes are issued from its registry only."
_AT_HOLDER = " The block's holder: only it splits its block."


def _operate(node: str, creds: Credentials, what: str, *, place: str) -> None:
    """Log ``creds`` in at ``node`` for ``what``, which is done at ``place`` only: the
    center issues from its registry, a block's holder splits it."""
    from .audit_alerts import store_of
    from .operator import run_as_operator

    run_as_operator(store_of(node), creds, what, place=place)


@click.group()
def codes() -> None:
    """Resident codes, My Numbers and local government codes."""


def _codes_bytes(codes_: np.ndarray[Any, Any], suffix: str, width: int) -> bytes:
    if suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, codes_)
        return buf.getvalue()
    if suffix == ".parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"resident_code": pa.array(codes_, pa.uint64())}), sink)
        return bytes(sink.getvalue().to_pybytes())
    text = "\n".join(format_code(codes_, width).tolist())
    return (text + ("\n" if text else "")).encode("ascii")


def _write_codes(codes_: np.ndarray[Any, Any], out: Path | None, width: int) -> None:
    if out is None:
        text = "\n".join(format_code(codes_, width).tolist())
        if text:
            click.echo(text)
    else:
        write_atomic(out, _codes_bytes(codes_, out.suffix, width))


def _generate(reg: CodeRegistry, n: int, quiet: bool) -> np.ndarray[Any, Any]:
    parts = []
    with progress(n, "generating", quiet) as advance:
        left = n
        while left > 0:
            k = min(CHUNK, left)
            parts.append(reg.generate(k))
            advance(k)
            left -= k
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)


@codes.command()
@click.argument("n", type=click.IntRange(min=0, max=10**10))
@click.option("--registry", "registry_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Registry file of every code ever issued: read if present (created if "
                   "absent), and the new codes recorded in it.")
@click.option("--node", help=_NODE_HELP + _AT_CENTER + " Required with --registry.")
@click.option("--unrecorded", is_flag=True,
              help="Record nothing (for tests and samples): the codes are fresh only within "
                   "this run and may be issued again by any registry.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the codes here (.npy, .parquet, or text: one code a line). "
                   "Default: standard output as text.")
@optional_operator_options
@json_option
@quiet_option
def generate(n: int, registry_path: Path | None, node: str | None, unrecorded: bool,
             out: Path | None, creds: LazyCredentials, as_json: bool, quiet: bool) -> None:
    """Issue N fresh resident codes, never issued before, recorded in --registry.

    One of --registry (the codes are recorded as issued, by an operator of --node) or
    --unrecorded (nothing is recorded; no login) is required.
    """
    if (registry_path is None) == (not unrecorded):
        raise click.UsageError("give exactly one of --registry FILE or --unrecorded")
    if registry_path is not None and node is None:
        raise click.UsageError("--registry needs --node: the node whose operator issues "
                               "the codes")
    if out is not None and os.path.lexists(out):
        raise ConflictError(f"{out} already exists; codes are never written over a file")
    if out is not None and not out.absolute().parent.is_dir():
        raise FileError(f"cannot write {out}: no such directory {out.absolute().parent}")
    if registry_path is not None:
        assert node is not None
        _operate(node, creds.get(), f"codes generate {n} --registry {registry_path}",
                 place=CENTER)
        with update_registry(registry_path) as reg:
            fresh = _generate(reg, n, quiet)
    else:
        reg = CodeRegistry()
        fresh = _generate(reg, n, quiet)
        click.echo(f"warning: {fresh.size} codes NOT recorded in any registry "
                   "(--unrecorded): they may be issued again", err=True)
    if out is not None:
        _write_codes(fresh, out, 11)
    if as_json:
        emit_json({
            "generated": int(fresh.size),
            "recorded": registry_path is not None,
            "registry_size": len(reg) if registry_path is not None else None,
            "registry": str(registry_path) if registry_path else None,
            "out": str(out) if out else None,
            "codes": None if out is not None else format_code(fresh).tolist(),
        })
    elif out is None:
        _write_codes(fresh, None, 11)
    else:
        where = f"registry holds {len(reg)}" if registry_path is not None else "not recorded"
        click.echo(f"{fresh.size} codes written to {out}; {where}", err=True)


@codes.command()
@click.argument("source", type=click.File("rb"), default="-")
@click.option("--kind", type=click.Choice(sorted(_KINDS)), default="resident-code",
              show_default=True, help="Which identifier the lines hold.")
@json_option
def check(source: Any, kind: str, as_json: bool) -> None:
    """Check identifiers, one a line, from SOURCE (a file, or - for standard input).

    Exit code 0 when every line is a valid identifier, 1 otherwise. A bad My Number is
    shown by its last two characters only (with its line number).
    """
    rust_kind, width = _KINDS[kind]
    problems: list[dict[str, Any]] = []
    well_formed: list[tuple[int, str]] = []
    checked = 0
    for raw in source:
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            checked += 1
            problems.append({"line": checked, "value": raw.strip().decode("utf-8", "replace"),
                             "reason": "not UTF-8 text"})
            continue
        if not line:
            continue
        checked += 1
        if len(line) == width and line.isascii() and line.isdigit():
            well_formed.append((checked, line))
        else:
            problems.append({"line": checked, "value": line,
                             "reason": f"not {width} ASCII digits"})
    if well_formed:
        values = [v for _, v in well_formed]
        if rust_kind == "resident_code":
            valid = is_valid_resident_code(values)
        elif rust_kind == "my_number":
            valid = is_valid_my_number(values)
        else:
            valid = is_valid_lg_code(values)
        for (i, v), ok in zip(well_formed, valid, strict=True):
            if not ok:
                problems.append({"line": i, "value": v, "reason": "wrong check digit"})
    problems.sort(key=lambda p: p["line"])
    if rust_kind == "my_number":  # a My Number, valid or not, is never shown whole
        for p in problems:
            p["value"] = f"...{p['value'][-2:]}"
    if as_json:
        emit_json({"checked": checked, "invalid": len(problems), "problems": problems})
    else:
        for p in problems:
            click.echo(f"line {p['line']}: {p['value']}: {p['reason']}")
        click.echo(f"{checked} checked, {len(problems)} invalid", err=True)
    sys.exit(1 if problems else 0)


@codes.group()
def block() -> None:
    """Blocks of fresh codes: center -> prefecture -> municipality."""


@block.command("allocate")
@click.option("--registry", "registry_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The center's registry file (created if absent, then updated).")
@click.option("--holder", required=True, callback=lg_code_arg,
              help="6-digit local government code of the holder.")
@click.option("-n", "n", required=True, type=click.IntRange(min=1, max=10**10),
              help="Codes in the block.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--node", required=True, help=_NODE_HELP + _AT_CENTER)
@operator_options
@json_option
def block_allocate(registry_path: Path, holder: str, n: int, out: Path, node: str,
                   creds: Credentials, as_json: bool) -> None:
    """Allocate a block of N fresh codes from the center's registry to HOLDER.

    The registry records the codes before the block file holds them; a failed write or
    a crash in between is completed by the next command on the registry.
    """
    _operate(node, creds, f"codes block allocate {n} to {holder} from {registry_path}"
                          f" into {out}", place=CENTER)
    _show(allocate_block_file(registry_path, n, holder, out), as_json)


@block.command("split")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--holder", required=True, callback=lg_code_arg,
              help="6-digit local government code of the child.")
@click.option("-n", "n", required=True, type=click.IntRange(min=1, max=10**10),
              help="Codes to move.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--node", required=True, help=_NODE_HELP + _AT_HOLDER)
@operator_options
@json_option
def block_split(source: Path, holder: str, n: int, out: Path, node: str,
                creds: Credentials, as_json: bool) -> None:
    """Move N codes of the block in SOURCE into a new child block file for HOLDER.

    A code is never in both files: a failed write or a crash in between is completed
    by the next command on SOURCE.
    """
    _operate(node, creds, f"codes block split {n} to {holder} from {source} into {out}",
             place=CodeBlock.load(source).holder)
    _show(split_block_file(source, n, holder, out), as_json)


@block.command("show")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def block_show(source: Path, as_json: bool) -> None:
    """Describe the block in SOURCE."""
    _show(CodeBlock.load(source), as_json)


def _show(blk: CodeBlock, as_json: bool) -> None:
    info = {"block_id": blk.block_id, "holder": blk.holder, "parent_id": blk.parent_id,
            "remaining": len(blk)}
    if as_json:
        emit_json(info)
    else:
        for k, v in info.items():
            click.echo(f"{k}: {v}")


__all__ = ["codes"]
