"""Helpers shared by the CLI commands: errors, JSON output, progress bars."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import wraps
from typing import Any, NoReturn, TypeVar, cast

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


# -- operators: credentials and login ----------------------------------------------------

#: Environment variables of the operator's credentials (``--operator``, ``--password-file``,
#: ``--card``, ``--card-pin-file``).
OPERATOR_ENV = "JUKICORE_OPERATOR"
PASSWORD_ENV = "JUKICORE_PASSWORD"
CARD_ENV = "JUKICORE_CARD"
CARD_PIN_ENV = "JUKICORE_CARD_PIN"
#: Those of the first admin a new store gets (``register init``, ``node init``,
#: ``operator bootstrap``).
ADMIN_ID_ENV = "JUKICORE_ADMIN_ID"
ADMIN_NAME_ENV = "JUKICORE_ADMIN_NAME"
ADMIN_PASSWORD_ENV = "JUKICORE_ADMIN_PASSWORD"
ADMIN_CARD_ENV = "JUKICORE_ADMIN_CARD"
ADMIN_CARD_PIN_ENV = "JUKICORE_ADMIN_CARD_PIN"

_SECRET_FILE_MAX = 1 << 16


def read_secret(path: str | os.PathLike[str] | None, env: str, what: str,
                option: str) -> str:
    """A secret from a file (its first line), else ``$env``, else a prompt on a terminal;
    none of them is an :class:`~jukicore.errors.AuthenticationError` (exit 1)."""
    from jukicore._files import read_regular
    from jukicore.errors import AuthenticationError, InvalidInputError

    if path is not None:
        raw = read_regular(path, max_bytes=_SECRET_FILE_MAX)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError(f"{os.fspath(path)}: the {what} file is not UTF-8"
                                    ) from None
        return text.split("\n", 1)[0].rstrip("\r")
    value = os.environ.get(env)
    if value:
        return value
    if sys.stdin.isatty():
        return str(click.prompt(what, hide_input=True))
    raise AuthenticationError(f"no {what}: use {option} or set ${env}")


class Credentials:
    """An operator's credentials as the CLI took them (read before any store is opened)."""

    def __init__(self, operator: str | None, password_file: str | None, card: str | None,
                 card_pin_file: str | None) -> None:
        from jukicore.errors import AuthenticationError

        if not operator:
            raise AuthenticationError(
                f"no operator: every command that acts on a store needs an operator's login"
                f" (--operator ID or ${OPERATOR_ENV}, its password and --card FILE)")
        if not card:
            raise AuthenticationError(
                f"no operator card: use --card FILE or set ${CARD_ENV}")
        self.operator = operator
        self.card = card
        self._password = read_secret(password_file, PASSWORD_ENV, "operator password",
                                     "--password-file")
        self._pin = read_secret(card_pin_file, CARD_PIN_ENV, "card PIN", "--card-pin-file")

    def __repr__(self) -> str:
        return f"Credentials(operator={self.operator!r}, card={self.card!r})"

    def session(self, store: object) -> Any:
        """Log in at ``store``: the :class:`~jukicore.access.operators.OperatorSession`."""
        from jukicore.access.operators import login

        return login(store, self.operator, self._password, self.card, self._pin)

    def check(self, store: object) -> Any:
        """Check the credentials at ``store`` without writing anything (a store whose
        audit log can take no entry): the :class:`~jukicore.access.Actor`."""
        from jukicore.access.operators import check_credentials

        return check_credentials(store, self.operator, self._password, self.card, self._pin)

    def login(self, store: object) -> Any:
        """Log in at ``store``; the :class:`~jukicore.access.Actor` of the session."""
        return self.session(store).actor()


def _with_options(wrapper: Callable[..., Any], options: list[Callable[[Any], Any]]) -> Any:
    """``wrapper`` with click ``options``, the first shown first in ``--help``."""
    out: Any = wrapper
    for option in reversed(options):
        out = option(out)
    return out


def operator_options(func: F) -> F:
    """``--operator``, ``--password-file``, ``--card``, ``--card-pin-file``: the command
    gets ``creds`` (:class:`Credentials`) instead. The CLI grants itself nothing: the
    actor is the logged-in operator with its account's roles."""
    return _operator_options(func, required=True)


def optional_operator_options(func: F) -> F:
    """:func:`operator_options` for a command that needs a login only for some of its
    uses: ``creds`` is a :class:`LazyCredentials`, read when the command asks for them."""
    return _operator_options(func, required=False)


class LazyCredentials:
    """Credentials read only when :meth:`get` is called (and then required)."""

    def __init__(self, *given: str | None) -> None:
        self._given = given

    def get(self) -> Credentials:
        with cli_errors():
            return Credentials(*self._given)


def _operator_options(func: F, *, required: bool) -> F:
    @wraps(func)
    def wrapper(*args: Any, operator: str | None, password_file: str | None,
                card: str | None, card_pin_file: str | None, **kwargs: Any) -> Any:
        given = (operator, password_file, card, card_pin_file)
        creds: Credentials | LazyCredentials
        if required:
            with cli_errors():
                creds = Credentials(*given)
        else:
            creds = LazyCredentials(*given)
        return func(*args, creds=creds, **kwargs)

    options = [
        click.option("--operator", metavar="ID", envvar=OPERATOR_ENV,
                     help=f"The operator acting (logs in with its password and card). "
                          f"Env: {OPERATOR_ENV}."),
        click.option("--password-file", type=click.Path(dir_okay=False),
                     help=f"File holding the operator's password (else ${PASSWORD_ENV}, "
                          "else a prompt on a terminal)."),
        click.option("--card", metavar="FILE", envvar=CARD_ENV,
                     help=f"The operator's card file. Env: {CARD_ENV}."),
        click.option("--card-pin-file", type=click.Path(dir_okay=False),
                     help=f"File holding the card's PIN (else ${CARD_PIN_ENV}, else a "
                          "prompt on a terminal)."),
    ]
    return cast(F, _with_options(wrapper, options))


def admin_options(func: F) -> F:
    """The first admin of a new store: the command gets ``admin`` (:class:`FirstAdmin`)."""

    @wraps(func)
    def wrapper(*args: Any, admin_id: str | None, admin_name: str | None,
                admin_password_file: str | None, admin_card: str | None,
                admin_card_pin_file: str | None, **kwargs: Any) -> Any:
        with cli_errors():
            admin = (None if admin_id is None else
                     FirstAdmin(admin_id, admin_name, admin_password_file, admin_card,
                                admin_card_pin_file))
        return func(*args, admin=admin, **kwargs)

    options = [
        click.option("--admin-id", envvar=ADMIN_ID_ENV,
                     help=f"Id of the store's first admin. Env: {ADMIN_ID_ENV}."),
        click.option("--admin-name", envvar=ADMIN_NAME_ENV,
                     help=f"The first admin's name. Env: {ADMIN_NAME_ENV}."),
        click.option("--admin-password-file", type=click.Path(dir_okay=False),
                     help=f"File holding the first admin's password (else "
                          f"${ADMIN_PASSWORD_ENV}, else a prompt on a terminal)."),
        click.option("--admin-card", metavar="FILE", envvar=ADMIN_CARD_ENV,
                     help=f"Where the first admin's card is written (a new file, mode 0600; "
                          f"an existing card of the same admin is reused). Env: "
                          f"{ADMIN_CARD_ENV}."),
        click.option("--admin-card-pin-file", type=click.Path(dir_okay=False),
                     help=f"File holding the card's PIN (else ${ADMIN_CARD_PIN_ENV}, else "
                          "a prompt on a terminal)."),
    ]
    return cast(F, _with_options(wrapper, options))


def _check_new_card_path(card: str, operator_id: str, pin: str) -> None:
    """A card file to be written: absent, or this operator's card opened by ``pin``."""
    from pathlib import Path

    from jukicore.access.cards import load_card
    from jukicore.errors import ConflictError

    p = Path(card)
    if not (p.exists() or p.is_symlink()):
        return
    try:
        ok = load_card(p, pin).operator_id == operator_id
    except JukiError:
        ok = False
    if not ok:
        raise ConflictError(f"{card} exists and is not {operator_id}'s card opened by the"
                            " PIN given: a new card is never written over a file")


class FirstAdmin:
    """The first admin's account as given on the command line (checked before any store
    is made: the password policy, the PIN, the card file)."""

    def __init__(self, admin_id: str, name: str | None, password_file: str | None,
                 card: str | None, card_pin_file: str | None) -> None:
        from jukicore.access.cards import check_pin
        from jukicore.access.operators import check_operator_id, check_password
        from jukicore.errors import InvalidInputError

        self.id = check_operator_id(admin_id)
        if not name:
            raise InvalidInputError(f"the first admin needs a name: --admin-name or"
                                    f" ${ADMIN_NAME_ENV}")
        if not card:
            raise InvalidInputError(f"the first admin needs a card file: --admin-card or"
                                    f" ${ADMIN_CARD_ENV}")
        self.name, self.card = name, card
        self._pin = check_pin(read_secret(card_pin_file, ADMIN_CARD_PIN_ENV,
                                          "first admin's card PIN", "--admin-card-pin-file"))
        _check_new_card_path(card, admin_id, self._pin)
        self._password = check_password(read_secret(
            password_file, ADMIN_PASSWORD_ENV, "first admin's password",
            "--admin-password-file"), admin_id)

    def __repr__(self) -> str:
        return f"FirstAdmin(id={self.id!r}, card={self.card!r})"

    def actor(self, lg_code: str | None) -> Any:
        from jukicore.access import Actor

        return Actor("operator", self.id, lg_code, frozenset({"admin"}))

    def create(self, store: object) -> None:
        from jukicore.access.operators import bootstrap_admin

        bootstrap_admin(store, self.id, name=self.name, password=self._password,
                        card_path=self.card, card_pin=self._pin)
