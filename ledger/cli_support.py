"""Shared pieces of the `koa` commands: opening the store, users, one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
import pydantic
from eventsourcing.persistence import PersistenceError

from domain.errors import DomainError
from ledger.bootstrap import Books, StoreUnreachable, open_books
from ledger.commands import InputError
from ledger.payment_run import RunFileError
from ledger.settings import Settings
from projections.split_view import ViewBehind

ERRORS_SHOWN_MAX = 200
EXIT_REFUSED = 1


class Refused(Exception):
    """A command was refused; the message is the one line the user sees."""


def _fail(message: str) -> None:
    one_line = " ".join(message.split())  # driver messages carry newlines and tabs
    click.echo(f"koa: {one_line}", err=True)
    sys.exit(EXIT_REFUSED)


def _refuse_text_not_utf8(ctx: click.Context) -> None:
    """An argument that is not UTF-8 (Python hands its bytes on as lone surrogates) is refused
    naming its option, before it reaches the store and fails there without a name."""
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        for text in value if isinstance(value, tuple | list) else (value,):
            if not isinstance(text, str):
                continue  # a path may hold any bytes: the file system takes them as they are
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                name = (
                    max(param.opts, key=len) if isinstance(param, click.Option) else param.human_readable_name
                )
                try:
                    what = f"byte 0x{text[e.start].encode('utf-8', 'surrogateescape')[0]:02x}"
                except UnicodeEncodeError:
                    what = f"U+{ord(text[e.start]):04X}"
                _fail(f"{name}: not UTF-8 text ({what} at character {e.start + 1})")


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            _refuse_text_not_utf8(ctx)
        try:
            return fn(*args, **kwargs)
        except (DomainError, InputError, RunFileError, Refused, StoreUnreachable, ViewBehind) as e:
            _fail(str(e))
        except pydantic.ValidationError as e:
            first = e.errors()[0]
            _fail(f"setting KOA_{str(first['loc'][0]).upper()}: {first['msg']}")
        except ValueError as e:  # e.g. a malformed KOA_DATABASE_URL
            _fail(str(e))
        except PersistenceError as e:
            _fail(f"the store refused or could not be reached: {e}")
        except OSError as e:  # the library's configuration errors, unwritable data directories
            _fail(f"{e.filename + ': ' if getattr(e, 'filename', None) else ''}{e.strerror or e}")

    return wrapper


def books_in(ctx: click.Context) -> Books:
    return ctx.obj["books"]


def acting_user(ctx: click.Context, user: str | None) -> str:
    return user or ctx.obj["settings"].user


def with_books(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Open the store for the command and close it afterwards."""

    @wraps(fn)
    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        settings = Settings()
        ctx.obj["settings"] = settings
        with open_books(settings) as books:
            ctx.obj["books"] = books
            return fn(ctx, *args, **kwargs)

    return handles_errors(wrapper)


USER_OPTION = click.option("--user", help="who does this (default: KOA_USER or the login name)")
