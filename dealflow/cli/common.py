"""What the command groups share: output (``emit``, ``table``), a user's mistake as one line on
stderr and an exit code (``fail``, ``DealflowGroup``), checked arguments (``FilePath``,
``RECORD_ID``, ``naive_utc``), who runs a command (``operator``, ``logged_in``), the outcome of a
file imported all or none (``import_file``), and the company's currency."""

from __future__ import annotations

import functools
import gc
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from models import DomainError
from models.text import ALLOWED_IN_NOTES, MAX_ID, has_control, printable, shown

from ..prefect_api import PrefectUnavailable


def reads_and_ends(command):
    """For a command that reads, prints and ends (inbox, deal show, stock, report): no cyclic
    garbage collection while it runs. Importing the models, SQLAlchemy and pandas makes a few
    hundred thousand objects that live as long as the process, and the collector looked them over
    again and again: 0.05-0.1 s of deal show's 1.05 s on five years of deals, ~0.5 s of a 2 s
    report. Reference counting still frees what it reads, and the process ends in a moment; the
    collector is on again after it (a test's CliRunner goes on in its process)."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        was_on = gc.isenabled()
        gc.disable()
        try:
            return command(*args, **kwargs)
        finally:
            if was_on:
                gc.enable()
    return run


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text if text is not None else json.dumps(data, indent=2, default=str))


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cell = lambda r, c: "" if r.get(c) is None else str(r[c])  # noqa: E731
    widths = {c: max(len(c), *(len(cell(r, c)) for r in rows)) for c in columns}
    head = "  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()
    body = ["  ".join(cell(r, c).ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join([head, *body])


def fail(message: str, code: int = 2) -> None:
    """A user's mistake (or a service that is not there): one line on stderr, then exit."""
    click.echo(f"error: {printable(' '.join(str(message).split()), 500)}", err=True)
    sys.exit(code)


def refuse_control_characters(ctx: click.Context) -> None:
    """No argument or option may carry control characters (other than line breaks and tabs, which
    notes may have): PostgreSQL refuses NUL outright, and the others break mail and terminals."""
    for param in ctx.command.params:
        values = ctx.params.get(param.name)
        for value in values if isinstance(values, tuple | list) else [values]:
            if isinstance(value, str | Path) and has_control(str(value), ALLOWED_IN_NOTES):
                name = param.opts[-1] if isinstance(param, click.Option) else param.human_readable_name
                raise DomainError(f"{name.lstrip('-')}: must not contain control characters "
                                  f"(only line breaks and tabs)")


class FilePath(click.Path):
    """A path option; one with control characters (a NUL makes the operating system refuse it with
    a traceback) is a usage error like any other."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and has_control(value):
            self.fail("must not contain control characters", param, ctx)
        return super().convert(value, param, ctx)


class DealflowCommand(click.Command):
    # a command that records its own refusals (``answer``) checks its arguments itself
    checks_its_own_arguments = False

    def invoke(self, ctx: click.Context) -> Any:
        if not self.checks_its_own_arguments:
            refuse_control_characters(ctx)
        return super().invoke(ctx)


class DealflowGroup(click.Group):
    """Turns a user's mistake into one line on stderr and exit code 2, never a traceback: the
    domain's errors, a value the database cannot hold, and click's own usage errors."""

    command_class = DealflowCommand
    group_class = type  # subgroups are DealflowGroups too

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # `dealflow` or `dealflow deal` alone: the help
            click.echo(exc.ctx.get_help())
            sys.exit(0)
        except click.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            fail(exc.format_message() + where, exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            fail("aborted", 1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            refuse_control_characters(ctx)
            return super().invoke(ctx)
        except DomainError as exc:
            fail(str(exc))
        except PrefectUnavailable as exc:
            fail(str(exc), 1)
        except Exception as exc:
            _database_error(exc)  # a value the database cannot hold, a database not set up
            if "httpx" in sys.modules:
                import httpx

                if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 401:
                    fail(_unauthorized(), 1)
            raise


def _database_error(exc: Exception) -> None:
    """One line for SQLAlchemy's errors a user can cause; SQLAlchemy is imported only by commands
    that use the database, and only they can raise its errors."""
    if "sqlalchemy" not in sys.modules:
        return
    from sqlalchemy.exc import DataError, OperationalError, ProgrammingError

    if isinstance(exc, DataError):  # the rules should have caught it first; still one line, nothing written
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        column = getattr(getattr(exc.orig, "diag", None), "column_name", None)
        fail(f"{column or 'value'}: the database cannot hold it ({first})")
    if isinstance(exc, OperationalError | ProgrammingError):
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        fail(f"database: {first}; is DATABASE_URL right, and has `dealflow init` run?")


def _unauthorized() -> str:
    from services.config import load_settings

    from ..api_credential import credential_file

    return (f"prefect: the Prefect server at {os.environ.get('PREFECT_API_URL')} refused the request "
            f"(401 Unauthorized): set PREFECT_API_AUTH_STRING to its credential (for the server `dealflow up` "
            f"started: {credential_file(load_settings().data_dir)}, read by itself when PREFECT_API_URL "
            f"is that server's address; it is the machines' and administrators' credential: the team goes "
            f"through the gateway, `dealflow login HANDLE --gateway URL`)")


RECORD_ID = click.IntRange(1, MAX_ID)  # ids are 32-bit integers in the database


EARLIEST, LATEST = datetime(2000, 1, 1), datetime(2100, 1, 1)


def naive_utc(value: str, option: str) -> datetime:
    """An ISO date/time, with or without an offset, as naive UTC like the database; only years
    a sale can be in (2000-2099), so that no date arithmetic later runs out of range."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise DomainError(f"{option}: must be an ISO date/time (2027-01-15 or 2027-01-15T10:00), "
                          f"got {shown(value)}") from None
    if not EARLIEST <= when.replace(tzinfo=None) < LATEST:
        raise DomainError(f"{option}: must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}, got {shown(value)}")
    if when.tzinfo is not None:
        from datetime import UTC
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def operator() -> str:
    """Who runs an account command, for the audit log: the logged-in person, else the OS user."""
    import getpass

    login = logged_in()
    if login:
        return login.handle
    try:
        return printable(f"cli:{getpass.getuser()}", 40)
    except (KeyError, OSError):
        return "cli"


def logged_in():
    from ..login import current

    return current()


def acting(command: str, by: str | None, code: str | None, subject: str, action: str, payload_of,
           who: str) -> tuple[str, dict[str, Any]]:
    """Who does a staff step outside a flow (``deal cancel``, ``invoice pay``) and its proof: the
    person (``--by``, else the logged-in one) and ``--code``, else the logged-in session's
    signature over ``subject``, ``action`` and ``payload_of(by)``, else (at a terminal, where codes
    are needed) a code asked for, hidden. ``who``: whose step it is, in words ("a manager")."""
    from services.config import load_settings

    from .. import remote

    if signed := remote.current():
        raise DomainError(f"{command}: you are signed in at the gateway {signed.url}; it is done on the business "
                          f"database (run it where DATABASE_URL is set, with --code, or `dealflow login`)")
    login = logged_in()
    if login is not None and code is None and by not in (None, "", login.handle):
        raise DomainError(f"by: you are logged in as {login.handle}; `dealflow logout` to act as someone else "
                          f"(or give their --code)")
    by = by or (login.handle if login is not None and code is None else None)
    if not by:
        raise DomainError(f"by: say who does it (--by HANDLE, {who}), or log in first (`dealflow login HANDLE`)")
    if code is not None:
        return by, {"code": code}
    if login is not None and login.handle == by:
        return by, login.prove(subject, action, payload_of(by))
    if load_settings().answer_codes and sys.stdin.isatty():
        return by, {"code": click.prompt("One-time code (the 6 digits your authenticator app shows)", hide_input=True,
                                         err=True)}
    return by, {}  # the check then says what proof is missing


def options_given(**options: Any) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


def import_file(path: Path, as_json: bool, load) -> None:
    """Import the file with the use case ``load(path, by)`` (all rows or none); a refused file:
    every problem on its own line, then the summary, exit 2."""
    from models import FileRefused

    try:
        imported = load(path, operator())
    except FileRefused as refused:
        for line in refused.lines:
            click.echo(f"error: {line}", err=True)
        fail(str(refused))
    result = imported.result
    counts = {k: len(v) for k, v in result.items()}
    emit(result, as_json, f"{path.name}: {imported.rows} rows; {counts['added']} added, {counts['changed']} changed, "
                          f"{counts['unchanged']} unchanged")


def company_currency() -> str:
    """The company's currency: the catalogue's prices are in it, and a customer without one of
    their own is in it."""
    from services.company import details

    return details()["currency"]
