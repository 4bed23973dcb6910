"""Staff accounts (``dealflow staff``) and proving who answers: ``login`` and ``logout``."""

from __future__ import annotations

from pathlib import Path

import click

from models import DomainError, Role
from models.text import shown

from .common import DealflowCommand, DealflowGroup, FilePath, emit, logged_in, operator, table


@click.group(cls=DealflowGroup)
def staff() -> None:
    """Staff accounts: who may answer which step, and their one-time codes."""


@staff.command("add")
@click.argument("handle")
@click.option("--name", required=True, help="Full name, as documents and the deal page show it.")
@click.option("--email", required=True, help="E-mail address (reminders and digests go there).")
@click.option("--role", "roles", required=True, metavar="ROLE[,ROLE…]",
              help=f"One or more of: {', '.join(r.value for r in Role)}.")
@click.option("--json", "as_json", is_flag=True, help="Print the account as JSON.")
def staff_add(handle: str, name: str, email: str, roles: str, as_json: bool) -> None:
    """Add a staff account (then `dealflow staff enroll HANDLE` for its one-time codes)."""
    from application import staff

    row = staff.add_staff(handle, name, email, roles, operator())
    emit(row, as_json, f"added {row['handle']} ({', '.join(row['roles'])}); enroll them with "
                       f"`dealflow staff enroll {row['handle']}`")


@staff.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the accounts as JSON.")
def staff_list(as_json: bool) -> None:
    """Every staff account: roles, enabled, enrolled for codes, locked."""
    from application import staff

    rows = staff.list_staff()
    shown_rows = [{**r, "roles": ",".join(r["roles"]), "enabled": "yes" if r["enabled"] else "no",
                   "enrolled": "yes" if r["enrolled"] else "no", "locked_until": r["locked_until"] or ""}
                  for r in rows]
    emit(rows, as_json, table(shown_rows, ["handle", "name", "email", "roles", "enabled", "enrolled",
                                           "locked_until"]))


@staff.command("role")
@click.argument("handle")
@click.argument("roles", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the account as JSON.")
def staff_role(handle: str, roles: tuple[str, ...], as_json: bool) -> None:
    """Set HANDLE's roles (replacing the ones they have): e.g. `staff role ana sales_rep sales_engineer`."""
    from application import staff

    row = staff.change_roles(handle, list(roles), operator())
    emit(row, as_json, f"{row['handle']}: {', '.join(row['roles'])}")


@staff.command("limit")
@click.argument("handle")
@click.option("--discount", required=True,
              help="The largest line discount HANDLE gives without a manager's approval: a percentage (0-100), "
                   "'unlimited', or 'default' (10 %; none for a manager).")
@click.option("--json", "as_json", is_flag=True, help="Print the limit as JSON.")
def staff_limit(handle: str, discount: str, as_json: bool) -> None:
    """Set HANDLE's discount limit: an estimate line over it waits for a sales manager's approval."""
    from application import staff

    out = staff.set_discount_limit(handle, discount, operator())
    handle, limit = out["handle"], out["discount_limit"]
    said = f"{format(limit.normalize(), 'f')} %" if limit is not None else "no limit"
    emit({"handle": handle, "discount_limit_pct": str(limit) if limit is not None else None}, as_json,
         f"{handle}: discount limit {said}")


@staff.command("disable")
@click.argument("handle")
def staff_disable(handle: str) -> None:
    """Disable HANDLE: they can no longer answer or log in (their history stays)."""
    from application import staff

    row = staff.disable_staff(handle, operator())
    click.echo(f"{row['handle']} disabled")


@staff.command("enable")
@click.argument("handle")
def staff_enable(handle: str) -> None:
    """Enable HANDLE again."""
    from application import staff

    row = staff.enable_staff(handle, operator())
    click.echo(f"{row['handle']} enabled")


@staff.command("unlock")
@click.argument("handle")
def staff_unlock(handle: str) -> None:
    """Lift HANDLE's lock after wrong codes; the next lock is a short one again. A manager logged
    in with `dealflow login`, or the administrator on the server (with the database and the
    secret key: when every manager is locked). Audited."""
    from application import staff

    login = logged_in()  # a manager's session; without one, the administrator on the server
    was = staff.unlock(handle, login.handle if login else operator(), login.session if login else None)
    click.echo(f"{handle} unlocked" if was else f"{handle} was not locked (the next lock is a short one again)")


@staff.command("enroll")
@click.argument("handle")
@click.option("--png", "png", type=FilePath(dir_okay=False, path_type=Path), default=None,
              help="Where to write the QR code as a PNG (default: DATA_DIR/enroll/HANDLE.png, mode 0600).")
@click.option("--json", "as_json", is_flag=True, help="Print the otpauth:// URI and the PNG's path as JSON.")
def staff_enroll(handle: str, png: Path | None, as_json: bool) -> None:
    """Give HANDLE a new one-time-code secret (the old one stops working) and show it: an
    otpauth:// URI and a QR code, here and as a PNG, for any authenticator app (RFC 6238 TOTP:
    30 s, 6 digits). Show it to that person only; delete the PNG once scanned."""
    from application import staff

    out = staff.enroll(handle, operator(), png)
    if as_json:
        emit(out, True)
        return
    import segno

    click.echo(f"{out['handle']}: scan this with an authenticator app (or type the URI's secret):\n{out['uri']}")
    segno.make(out["uri"], error="m").terminal(compact=True)
    click.echo(f"The same QR code as a PNG: {out['png']} (mode 0600; delete it once scanned).")


@click.command(cls=DealflowCommand)
@click.argument("handle")
@click.option("--code", metavar="NNNNNN", help="Your one-time code (asked for, hidden, when not given).")
@click.option("--hours", type=click.FloatRange(0.01, 24), default=8, show_default=True,
              help="How long the session lasts.")
@click.option("--gateway", "gateway_url", metavar="URL",
              help="Sign in at the team's gateway (e.g. https://prefect.example.com) instead of this machine's "
                   "database: `inbox`, `deal show` and `answer` then go through it.")
def login(handle: str, code: str | None, hours: float, gateway_url: str | None) -> None:
    """Open a session with a one-time code: `dealflow answer` then signs every answer with the
    session's key (kept in your config folder, mode 0600), no code needed until it expires.
    With --gateway, the session is the gateway's (its token kept the same way)."""
    if code is None:
        code = click.prompt("One-time code (the 6 digits your authenticator app shows)", hide_input=True, err=True)
    if gateway_url:
        from .. import remote

        signed = remote.sign_in(gateway_url, handle, code, hours)
        click.echo(f"signed in at {signed.url} as {signed.handle} until {signed.expires_at:%Y-%m-%d %H:%M} UTC "
                   f"(token kept in {remote.login_file()}); `inbox`, `deal show` and `answer` go through it")
        return
    from application import staff

    from ..login import Login, save

    def keep(opened) -> Path:
        try:
            return save(Login.opened(opened))
        except OSError as exc:  # nowhere to keep the key: no session either
            raise DomainError(f"config: cannot keep the session in {shown(str(exc.filename or ''), 200)} "
                              f"({exc.strerror}); set DEALFLOW_CONFIG_DIR to a folder of yours") from None

    opened, path = staff.log_in(handle, code, hours, keep)
    click.echo(f"logged in as {opened.handle} until {opened.expires_at:%Y-%m-%d %H:%M} UTC (session kept in {path})")


@click.command(cls=DealflowCommand)
def logout() -> None:
    """Close your session (this database's); answers need a code or a new login after it."""
    from .. import remote
    from ..login import forget

    if signed := remote.forget():
        try:
            signed.call("POST", "/dealflow/api/logout")
        except DomainError:
            pass  # ended already, or the gateway is away: the token is gone from here either way
        click.echo(f"signed out at {signed.url} ({signed.handle})")
        return
    login_ = forget()
    if login_ is None:
        click.echo("not logged in")
        return
    from application import staff

    staff.log_out(login_.session)
    click.echo(f"logged out ({login_.handle})")
