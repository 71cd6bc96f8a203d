"""Logging: jukicore's loggers, the JSON-lines formatter and the command line's setup.

The library logs through :mod:`logging` under the ``jukicore`` logger
(``jukicore.network.sync``, ``jukicore.network.night``, ...) and never configures logging itself:
importing jukicore adds no handler and leaves the root logger alone. An application
attaches its own handlers, or calls :func:`configure_logging` (what the ``jukicore``
command does with ``--log-level`` and ``--log-format``).

Each step of the nightly work logs one record with its figures as record
attributes (``logger.info(..., extra={"step": "export", "rows": 1200, ...})``):
``step``, ``node`` and, where they apply, ``packets``, ``rows``, ``bytes`` and
``seconds``. :class:`JsonFormatter` writes each record as one JSON object on one
line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and those
fields; :class:`TextFormatter` appends them as ``key=value``. Standard library
only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from typing import IO, Any

from jukicore.errors import InvalidInputError

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "JsonFormatter", "TextFormatter", "configure_logging",
           "step_fields"]

#: The names ``--log-level`` accepts.
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: The names ``--log-format`` accepts.
LOG_FORMATS = ("text", "json")

#: The attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


def step_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record carries beyond the standard ones (its ``extra``)."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``ts``, ``level``, ``logger``, ``message``,
    the record's step fields, and ``exc`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in step_fields(record).items():
            doc.setdefault(k, v)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: message key=value ...`` (UTC time), one line per record (a
    traceback follows on its own lines). Control characters in the message and the fields
    (a file name with a newline, say) are escaped, so a record cannot forge another."""

    def formatTime(self, record: logging.LogRecord,
                   datefmt: str | None = None) -> str:
        return time.strftime(datefmt or "%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))

    def format(self, record: logging.LogRecord) -> str:
        line = (f"{self.formatTime(record)}Z {record.levelname} {record.name}: "
                f"{_printable(record.getMessage())}")
        fields = step_fields(record)
        if fields:
            line += " " + " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace")
                   .decode("ascii") for c in text)


def _text(value: Any) -> str:
    """A field's value in a text line: one token (quoted as a JSON string when it holds a
    space, ``=``, a character that is not printable or, for a string, ``"``); floats to the
    millisecond, the rest compact JSON."""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, str):
        plain = value and value.isprintable() and not any(c.isspace() or c in '"='
                                                          for c in value)
        return value if plain else json.dumps(value, ensure_ascii=False)
    s = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    return json.dumps(s, ensure_ascii=False) if any(c.isspace() for c in s) else s


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (a handler holding
    the stream it was made with would write into a closed one once a caller, such as
    click's test runner, swapped ``sys.stderr`` back)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


#: Marks the handler :func:`configure_logging` installed, so a second call replaces it.
_MARK = "_jukicore_cli_handler"


def configure_logging(level: str | int = "warning", fmt: str = "text",
                      stream: IO[str] | None = None) -> logging.Handler:
    """Send the ``jukicore`` loggers' records at ``level`` and above to ``stream`` (default:
    standard error, looked up at each record) as ``fmt`` (``text`` or ``json`` lines).

    Only the ``jukicore`` logger is touched (one handler, replaced by the next call; its
    records do not also go to the root logger's handlers); the root logger is left as it
    is. An unknown level or format is an :class:`~jukicore.errors.InvalidInputError`.
    """
    if isinstance(level, str):
        if level.lower() not in LOG_LEVELS:
            raise InvalidInputError(f"unknown log level {level!r}: one of {', '.join(LOG_LEVELS)}")
        numeric = logging.getLevelName(level.upper())
    else:
        numeric = level
    if fmt not in LOG_FORMATS:
        raise InvalidInputError(f"unknown log format {fmt!r}: one of {', '.join(LOG_FORMATS)}")
    handler: logging.Handler = (_StderrHandler() if stream is None
                                else logging.StreamHandler(stream))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _MARK, True)
    logger = logging.getLogger("jukicore")
    for old in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False
    return handler
