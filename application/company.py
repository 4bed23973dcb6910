"""The company that sells (its details, as every document and email shows them) and setting up
an installation: the secret key and the schema, then the company and its first manager."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models import DomainError, StaffUser, identity, seed
from models.company import REQUIRED, THE_COMPANY, Company, company_values, edit, set_up
from models.staff import add_staff
from services import keys
from services.company import details
from services.config import load_settings

from .uow import unit_of_work

# the first manager as given: (handle, name, e-mail), each None when not given
Manager = tuple[str | None, str | None, str | None]


def show_company() -> dict[str, Any]:
    """The company's details: name, address, phone, e-mail, tax ID, bank, currency, mail sender, terms."""
    return details()


def edit_company(given: dict[str, Any], by: str) -> dict[str, Any]:
    """Change the details given (all checked before any is written; the currency only while no
    amount is in it). Returns ``company``, the details now, and ``changed``, the fields that changed."""
    with unit_of_work() as s:
        company, changed = edit(s, given, by=by)
        return {"company": company.as_dict(), "changed": changed}


def prepare_installation() -> Path | None:
    """The data folder's secret key (created unless one is configured or there), checked, and the
    database created or upgraded to the newest schema; the key file's path if it was created now."""
    from services.db import migrate

    settings = load_settings()
    created = keys.ensure_key_file(settings)
    keys.cipher(settings)  # a malformed key stops here, before the schema changes
    migrate()
    return created


def set_up_installation(given: dict[str, Any], *, demo_data: bool, manager: Manager, by: str,
                        complete_company: Callable[[dict[str, Any]], dict[str, Any]],
                        complete_manager: Callable[[Manager], Manager]) -> dict[str, Any]:
    """The company and its first manager, enrolled for one-time codes, in one unit of work (after
    ``prepare_installation``). Run again, it changes nothing it finds and refuses details that
    differ from the company's. ``demo_data``: the Glocial demo's staff and catalogue too (and its
    company, when none is given or set up).

    ``complete_company(given)`` is asked for the company's details when a required one is missing,
    ``complete_manager((handle, name, email))`` for the first manager when one is missing; each
    returns them complete or raises (the door asks a person, or says which option is missing).

    Returns ``added`` (staff and products), ``company`` (its details), ``first_manager`` (the
    handle and otpauth:// URI of the manager enrolled now, or None) and ``tightened`` (how many
    files and folders of the data folder were made the owner's alone)."""
    from services.files import tighten

    settings = load_settings()
    cipher = keys.cipher(settings)
    enrolled = None
    with unit_of_work() as s:
        company = s.get(Company, THE_COMPANY)
        if company is None:
            details_given: dict[str, Any] | None = given
            if not given and demo_data:
                details_given = None  # the demo's company (seed.load)
            elif any(f not in given for f in REQUIRED):
                details_given = complete_company(given)
            if details_given is not None:
                set_up(s, details_given, by=by)
        elif given:
            wanted = company_values(given, new=False)
            differs = [f for f, v in wanted.items() if getattr(company, f) != v]
            if differs:
                raise DomainError(f"{differs[0]}: the company is set up already; change it with "
                                  f"`dealflow company edit --{differs[0].replace('_', '-')} …`")
        added = seed.load(s, cipher) if demo_data else {"staff": 0, "products": 0}
        managers = [p for p in s.scalars(select(StaffUser)) if p.holds("manager") and p.active]
        handle = manager[0]
        if not managers:
            handle, name, email = manager if all(manager) else complete_manager(manager)
            person = add_staff(s, handle, name, email, "manager")
            enrolled = {"handle": person.handle, "uri": identity.enroll(s, person, cipher, by=by)}
            added["staff"] += 1
        elif handle and not any(p.handle == handle.strip().lower() for p in managers):
            raise DomainError(f"manager: there is a manager already ({', '.join(p.handle for p in managers)}); "
                              f"add more with `dealflow staff add {handle} --role manager …`")
        company_now = s.get(Company, THE_COMPANY).as_dict()
    return {"added": added, "company": company_now, "first_manager": enrolled,
            "tightened": tighten(settings.data_dir)}
