"""Staff accounts (``dealflow staff``) and proving who answers: ``login`` and ``logout``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from models import DomainError, Role, utcnow
from models.text import shown

from .common import DealflowCommand, DealflowGroup, FilePath, emit, logged_in, operator, table


def _staff_row(p) -> dict[str, Any]:
    from models import identity

    return {"handle": p.handle, "name": p.name, "email": p.email, "roles": p.role_list,
            "enabled": p.active, "enrolled": p.enrolled,
            "locked_until": p.locked_until.isoformat(timespec="seconds")
            if p.locked_until and identity.locked(p, utcnow()) else None}


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
    from models import audit
    from models.staff import add_staff
    from services.db import session_scope

    with session_scope() as s:
        person = add_staff(s, handle, name, email, roles)
        audit.record(s, operator(), "staff.added", subject=person.handle, roles=person.role_list)
        row = _staff_row(person)
        s.commit()
    emit(row, as_json, f"added {row['handle']} ({', '.join(row['roles'])}); enroll them with "
                       f"`dealflow staff enroll {row['handle']}`")


@staff.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the accounts as JSON.")
def staff_list(as_json: bool) -> None:
    """Every staff account: roles, enabled, enrolled for codes, locked."""
    from sqlalchemy import select

    from models import StaffUser
    from services.db import session_scope

    with session_scope() as s:
        rows = [_staff_row(p) for p in s.scalars(select(StaffUser).order_by(StaffUser.handle))]
    shown_rows = [{**r, "roles": ",".join(r["roles"]), "enabled": "yes" if r["enabled"] else "no",
                   "enrolled": "yes" if r["enrolled"] else "no", "locked_until": r["locked_until"] or ""}
                  for r in rows]
    emit(rows, as_json, table(shown_rows, ["handle", "name", "email", "roles", "enabled", "enrolled",
                                           "locked_until"]))


def _change_staff(handle: str, change, action: str, **details: Any) -> dict[str, Any]:
    from models import audit
    from models.staff import staff_member
    from services.db import session_scope

    with session_scope() as s:
        person = staff_member(s, handle)
        change(s, person)
        audit.record(s, operator(), action, subject=person.handle, **details)
        row = _staff_row(person)
        s.commit()
        return row


@staff.command("role")
@click.argument("handle")
@click.argument("roles", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the account as JSON.")
def staff_role(handle: str, roles: tuple[str, ...], as_json: bool) -> None:
    """Set HANDLE's roles (replacing the ones they have): e.g. `staff role ana sales_rep sales_engineer`."""
    from models.staff import check_roles, set_roles

    wanted = check_roles(list(roles))
    row = _change_staff(handle, lambda s, p: set_roles(s, p, wanted), "staff.roles_changed", roles=wanted.split(","))
    emit(row, as_json, f"{row['handle']}: {', '.join(row['roles'])}")


@staff.command("limit")
@click.argument("handle")
@click.option("--discount", required=True,
              help="The largest line discount HANDLE gives without a manager's approval: a percentage (0-100), "
                   "'unlimited', or 'default' (10 %; none for a manager).")
@click.option("--json", "as_json", is_flag=True, help="Print the limit as JSON.")
def staff_limit(handle: str, discount: str, as_json: bool) -> None:
    """Set HANDLE's discount limit: an estimate line over it waits for a sales manager's approval."""
    from models import audit
    from models.staff import staff_member
    from services.db import session_scope

    with session_scope() as s:
        person = staff_member(s, handle)
        person.set_discount_limit(discount)
        limit = person.discount_limit
        audit.record(s, operator(), "staff.discount_limit", subject=person.handle,
                     discount_limit=str(limit) if limit is not None else "unlimited")
        handle = person.handle
        s.commit()
    said = f"{format(limit.normalize(), 'f')} %" if limit is not None else "no limit"
    emit({"handle": handle, "discount_limit_pct": str(limit) if limit is not None else None}, as_json,
         f"{handle}: discount limit {said}")


@staff.command("disable")
@click.argument("handle")
def staff_disable(handle: str) -> None:
    """Disable HANDLE: they can no longer answer or log in (their history stays)."""
    from models.staff import disable

    row = _change_staff(handle, disable, "staff.disabled")
    click.echo(f"{row['handle']} disabled")


@staff.command("enable")
@click.argument("handle")
def staff_enable(handle: str) -> None:
    """Enable HANDLE again."""
    from models.staff import enable

    row = _change_staff(handle, lambda s, p: enable(p), "staff.enabled")
    click.echo(f"{row['handle']} enabled")


@staff.command("unlock")
@click.argument("handle")
def staff_unlock(handle: str) -> None:
    """Lift HANDLE's lock after wrong codes; the next lock is a short one again. A manager logged
    in with `dealflow login`, or the administrator on the server (with the database and the
    secret key: when every manager is locked). Audited."""
    from models import identity
    from models.staff import staff_member
    from services import keys
    from services.db import session_scope

    login = logged_in()
    with session_scope() as s:
        if login is not None:
            manager = staff_member(s, login.handle)
            row = s.get(identity.StaffSession, login.session)
            if row is None or row.staff_id != manager.id or row.closed_at is not None or row.expires_at <= utcnow() \
                    or not manager.holds("manager") or not manager.active:
                raise DomainError(f"staff unlock: a manager's step, and you are logged in as {login.handle}; "
                                  f"`dealflow logout`, or log in as a manager")
            by = manager.handle
        else:
            keys.cipher()  # the administrator: this machine holds the installation's key
            by = operator()
        person = staff_member(s, handle)
        was = identity.unlock(s, person, by)
        s.commit()
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
    import segno

    from models import identity
    from models.staff import staff_member
    from services import keys
    from services.config import load_settings
    from services.db import session_scope

    settings = load_settings()
    cipher = keys.cipher(settings)
    with session_scope() as s:
        person = staff_member(s, handle)
        uri = identity.enroll(s, person, cipher, by=operator())
        handle = person.handle
        qr = segno.make(uri, error="m")
        path = png or settings.data_dir / "enroll" / f"{handle}.png"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if png is None:
                path.unlink(missing_ok=True)  # our own earlier one; a path you give is never overwritten
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                qr.save(f, kind="png", scale=6)
        except OSError as exc:
            raise DomainError(f"png: cannot write {shown(str(path), 200)} ({exc.strerror}); "
                              f"choose another path") from None
        s.commit()
    if as_json:
        emit({"handle": handle, "uri": uri, "png": str(path)}, True)
        return
    click.echo(f"{handle}: scan this with an authenticator app (or type the URI's secret):\n{uri}")
    qr.terminal(compact=True)
    click.echo(f"The same QR code as a PNG: {path} (mode 0600; delete it once scanned).")


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
    from models import identity
    from services import keys
    from services.db import session_scope

    from ..login import Login, save

    if code is None:
        code = click.prompt("One-time code (the 6 digits your authenticator app shows)", hide_input=True, err=True)
    if gateway_url:
        from .. import remote

        signed = remote.sign_in(gateway_url, handle, code, hours)
        click.echo(f"signed in at {signed.url} as {signed.handle} until {signed.expires_at:%Y-%m-%d %H:%M} UTC "
                   f"(token kept in {remote.login_file()}); `inbox`, `deal show` and `answer` go through it")
        return
    cipher = keys.cipher()
    with session_scope() as s:
        try:
            opened = identity.open_session(s, handle, code, cipher, hours=hours)
        except DomainError:
            s.commit()  # the refusal and a wrong code are on the record
            raise
        try:
            path = save(Login.opened(opened))
        except OSError as exc:  # nowhere to keep the key: no session either
            s.rollback()
            raise DomainError(f"config: cannot keep the session in {shown(str(exc.filename or ''), 200)} "
                              f"({exc.strerror}); set DEALFLOW_CONFIG_DIR to a folder of yours") from None
        s.commit()
    click.echo(f"logged in as {opened.handle} until {opened.expires_at:%Y-%m-%d %H:%M} UTC (session kept in {path})")


@click.command(cls=DealflowCommand)
def logout() -> None:
    """Close your session (this database's); answers need a code or a new login after it."""
    from models import identity
    from services.db import session_scope

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
    with session_scope() as s:
        identity.close_session(s, login_.session)
        s.commit()
    click.echo(f"logged out ({login_.handle})")
