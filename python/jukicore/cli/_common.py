"""Helpers shared by the CLI commands: errors, JSON output, progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click

from jukicore.errors import JukiError

F = TypeVar("F", bound=Callable[..., Any])


def die(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def juki_errors(func: F) -> F:
    """Turn a JukiError raised by a command into ``error: ...`` and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except JukiError as exc:
            die(str(exc))

    return wrapper  # type: ignore[return-value]


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON on standard output."
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")


@contextmanager
def progress(total: int, label: str, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """A progress bar on standard error; yields ``advance(n)``."""
    hidden = quiet or not sys.stderr.isatty()
    with click.progressbar(length=total, label=label, file=sys.stderr, hidden=hidden) as bar:
        yield bar.update


@contextmanager
def stage_progress(quiet: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """Progress bars for named stages; yields ``report(stage, done, total)``."""
    hidden = quiet or not sys.stderr.isatty()
    with ExitStack() as stack:
        bars: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = stack.enter_context(click.progressbar(
                    length=total, label=stage, file=sys.stderr, hidden=hidden))
            bar = bars[stage]
            bar.update(max(0, done - bar.pos))

        yield report
