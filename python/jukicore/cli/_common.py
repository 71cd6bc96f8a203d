"""Helpers shared by the CLI commands: errors, JSON output, progress bars."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click

from jukicore.codes import is_valid_lg_code, is_valid_resident_code, lg_code_check_digit
from jukicore.errors import FileError, JukiError

F = TypeVar("F", bound=Callable[..., Any])

#: Set to 1 to let an unexpected exception (a bug) show its traceback.
DEBUG_ENV = "JUKICORE_DEBUG"


def die(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _os_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    names = [n for n in (exc.filename, getattr(exc, "filename2", None)) if n is not None]
    if names:
        return f"cannot use {' -> '.join(os.fsdecode(n) for n in names)}: {reason}"
    return f"file or device error ({type(exc).__name__}): {reason}"


@contextmanager
def cli_errors() -> Iterator[None]:
    """The CLI's one error boundary (used by :class:`JukiGroup`, so every command).

    A :class:`JukiError` becomes ``error: <message>`` and exit 1; an ``OSError`` (a
    missing or unwritable file, a full disk) a :class:`FileError` message naming the
    path; a non-UTF-8 input or an out-of-range number a plain message; usage errors
    stay click's (exit 2). Anything else is a bug: one line, a hint, exit 1 (the
    traceback with ``JUKICORE_DEBUG=1``).
    """
    try:
        yield
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort,
            SystemExit, KeyboardInterrupt, GeneratorExit):
        raise
    except JukiError as exc:
        die(str(exc) or type(exc).__name__)
    except OSError as exc:
        die(str(FileError(_os_message(exc))))
    except UnicodeDecodeError as exc:
        die(f"the input is not UTF-8 text (byte {exc.start}: {exc.reason})")
    except OverflowError as exc:
        die(f"a number is out of range: {exc}")
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        line = " ".join(str(exc).split())[:300]
        click.echo(f"error: internal error: {type(exc).__name__}: {line}", err=True)
        click.echo(f"hint: this is a bug in jukicore; please report it with the command "
                   f"line (run again with {DEBUG_ENV}=1 for the traceback)", err=True)
        sys.exit(1)


class JukiGroup(click.Group):
    """A click group whose commands and subgroups all run inside :func:`cli_errors`."""

    def invoke(self, ctx: click.Context) -> Any:
        with cli_errors():
            return super().invoke(ctx)


def juki_errors(func: F) -> F:
    """Kept for commands written with it: the same boundary as :class:`JukiGroup`
    (which ``main`` already applies to every command), so a command also behaves
    when invoked on its own."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with cli_errors():
            return func(*args, **kwargs)

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


def lg_code_arg(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A local government code argument: 6 ASCII digits with their check digit (exit 2)."""
    if value is None:
        return None
    if not (len(value) == 6 and value.isascii() and value.isdigit()):
        raise click.BadParameter(f"a local government code is 6 digits, got {value!r}")
    if not is_valid_lg_code(value):
        raise click.BadParameter(
            f"{value} has a wrong check digit (expected {lg_code_check_digit(value[:5])})")
    return value


def resident_code_arg(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """A resident code argument: 11 ASCII digits with their check digit (exit 2)."""
    if not (len(value) == 11 and value.isascii() and value.isdigit()):
        raise click.BadParameter(f"a resident code is 11 digits, got {value!r}")
    if not is_valid_resident_code(value):
        raise click.BadParameter(f"{value} is not a resident code (wrong check digit)")
    return int(value)
