"""Setting up: ``init`` (the database, your company and its first manager), ``company`` (its
details, as every document and email shows them) and ``demo``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from models import DomainError
from models.text import shown
from services.config import UNVERIFIED_NOTE

from ..prefect_api import ensure_api
from .common import DealflowCommand, DealflowGroup, FilePath, emit, operator

# the company's details as options of `init` and `company edit`: option -> field of models.company
COMPANY_OPTIONS = {"company_name": "name", "address": "address", "phone": "phone", "email": "email",
                   "tax_id": "tax_id", "bank": "bank", "currency": "currency", "mail_from": "mail_from",
                   "payment_terms": "payment_terms_days", "deposit_pct": "deposit_pct",
                   "deposit_before": "deposit_before", "credit_overdue_days": "credit_overdue_days"}
# asked for by `init` only when given; their defaults serve a new company (no deposit, 30 days)
NOT_ASKED = ("deposit_pct", "deposit_before", "credit_overdue_days")


def company_options(command):
    """The company's details as options (each optional: `init` asks for what is missing)."""
    for option in reversed([
        click.option("--company-name", help="The company's name, as documents and emails show it."),
        click.option("--address", help="Its postal address (\\n for a line break)."),
        click.option("--phone", help="Its phone number."),
        click.option("--email", help="Its e-mail address, printed on documents."),
        click.option("--tax-id", help="Its tax ID (VAT, GST, …), printed on every document."),
        click.option("--bank", help="The bank details customers pay to (e.g. IBAN and bank)."),
        click.option("--currency", help="Its currency (ISO 4217: USD, EUR, JPY, …)."),
        click.option("--mail-from", help="The sender of every email (default: its e-mail)."),
        click.option("--payment-terms", help="A new customer's payment terms in days (default 30)."),
        click.option("--deposit-pct", help="The deposit a customer without terms of their own pays, % of the order "
                                           "(0-100; default 0: none)."),
        click.option("--deposit-before", metavar="shipping|release",
                     help="When that deposit is due: before the first shipment (shipping, the default) or before "
                          "QA releases the order (release)."),
        click.option("--credit-overdue-days",
                     help="An order of a customer with an invoice overdue by more than this many days goes on "
                          "credit hold (default 30)."),
        click.option("--from", "from_file", type=FilePath(exists=True, dir_okay=False, path_type=Path),
                     help="The details as a JSON object (as `company show --json` prints them); options win."),
    ]):
        command = option(command)
    return command


def _company_given(from_file: Path | None, options: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if from_file is not None:
        try:
            raw = json.loads(from_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise DomainError(f"from: {shown(str(from_file), 200)} is not a JSON object of company details "
                              f"({type(exc).__name__})") from None
        if not isinstance(raw, dict):
            raise DomainError(f"from: {shown(str(from_file), 200)} must hold one JSON object of company details")
    for option, field in COMPANY_OPTIONS.items():
        if options.get(option) is not None:
            raw[field] = options[option].replace("\\n", "\n") if field == "address" else options[option]
    return raw


def _ask_company(raw: dict[str, Any]) -> dict[str, Any]:
    """What is missing of the company's details, asked at the terminal."""
    from models.company import FIELDS, REQUIRED

    click.echo("Your company, as documents and emails will show it (change it later: `dealflow company edit`).")
    asked = dict(raw)
    for field, (what, _) in FIELDS.items():
        if field in asked or field in NOT_ASKED:
            continue
        default = {"mail_from": asked.get("email"), "payment_terms_days": "30"}.get(field)
        value = click.prompt(f"{field.replace('_', ' ')}: {what}", default=default or ("" if field not in REQUIRED
                                                                                        else None),
                             show_default=bool(default))
        if str(value).strip():
            asked[field] = value
    return asked


def _company_text(company: dict[str, Any]) -> str:
    from models.company import FIELDS

    width = max(map(len, FIELDS))
    return "\n".join(f"{field.ljust(width)}  {str(company[field]).replace(chr(10), ' / ')}" for field in FIELDS)


@click.command(cls=DealflowCommand)
@click.option("--demo-data", is_flag=True,
              help="Load the Glocial Machineries demo: its company (unless yours is set up), six staff, six products "
                   "and its customer (30 % deposit before shipping, credit limit 250,000).")
@company_options
@click.option("--manager", "manager_handle", metavar="HANDLE", help="The first manager's handle (e.g. ana).")
@click.option("--manager-name", help="The first manager's full name.")
@click.option("--manager-email", help="The first manager's e-mail address.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init(demo_data: bool, from_file: Path | None, manager_handle: str | None, manager_name: str | None,
         manager_email: str | None, as_json: bool, **company_opts: Any) -> None:
    """Create or upgrade the database and set up your company: its name, address, phone, e-mail,
    tax ID, bank details, currency and mail sender (asked for at a terminal, or given as options or
    `--from FILE`), and the first manager, enrolled for one-time codes (their QR code is printed).
    Without DEALFLOW_SECRET_KEY, creates the data folder's secret key file. `--demo-data` loads the
    Glocial demo instead: its company, staff and catalogue."""
    from application.company import prepare_installation, set_up_installation
    from services.config import load_settings

    settings = load_settings()
    created = prepare_installation()
    interactive = _at_a_terminal() and not as_json
    given = _company_given(from_file, company_opts)

    def complete_company(raw: dict[str, Any]) -> dict[str, Any]:
        if not interactive:
            from models.company import REQUIRED

            missing = next(f for f in REQUIRED if f not in raw)
            option = {"name": "--company-name"}.get(missing, f"--{missing.replace('_', '-')}")
            raise DomainError(f"{missing}: your company's {missing.replace('_', ' ')} is needed ({option}, "
                              f"or all details with --from FILE); or --demo-data for the Glocial demo")
        return _ask_company(raw)

    done = set_up_installation(
        given, demo_data=demo_data, manager=(manager_handle, manager_name, manager_email), by=operator(),
        complete_company=complete_company, complete_manager=lambda manager: _first_manager(*manager, interactive))
    added, enrolled, tightened = done["added"], done["first_manager"], done["tightened"]
    url = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", settings.database_url)
    details = done["company"]
    text = (f"database ready at {url}; {details['name']} ({details['currency']}, {details['payment_terms_days']} "
            f"days' terms); added {added['staff']} staff"
            + (f", {added['products']} products and {added['customers']} customer"
               + ("s" if added["customers"] != 1 else "") if added.get("customers")
               else f" and {added['products']} products"))
    if enrolled:
        import segno

        text += (f"\nfirst manager: {enrolled['handle']}. Scan this with an authenticator app (or type the "
                 f"URI's secret); show it to them only:\n{enrolled['uri']}")
        if not as_json:
            click.echo(text)
            segno.make(enrolled["uri"], error="m").terminal(compact=True)
            text = ("then: `dealflow staff add HANDLE --name … --email … --role …` and `dealflow staff enroll "
                    "HANDLE` for each of your team; `dealflow product import FILE` for your catalogue")
    if tightened:
        text += (f"\n{settings.data_dir}: {tightened} files and folders that others could read or write are now "
                 f"yours alone")
    if created:
        text += (f"\nsecret key created: {created} (mode 0600; it encrypts the staff's code secrets: "
                 f"back it up, and give the same key to every machine that runs deals, as DEALFLOW_SECRET_KEY)")
    if not settings.answer_codes:
        text += f"\n{UNVERIFIED_NOTE}"
    emit({"database": url, **added, "company": done["company"], "first_manager": enrolled,
          "secret_key_file": str(created) if created else None, "tightened": tightened}, as_json, text)


def _at_a_terminal() -> bool:
    """Whether a person types the answers (then `init` asks for what is missing)."""
    return sys.stdin.isatty()


def _first_manager(handle: str | None, name: str | None, email: str | None,
                   interactive: bool) -> tuple[str, str, str]:
    """What is missing of the first manager (handle, name, e-mail), asked for at a terminal."""
    if not interactive:
        missing = "manager" if not handle else "manager-name" if not name else "manager-email"
        raise DomainError(f"{missing}: the first manager is needed (--manager HANDLE --manager-name NAME "
                          f"--manager-email EMAIL); they add the rest of the team")
    click.echo("The first manager (they add the rest of the team):")
    handle = handle or click.prompt("handle (e.g. ana)")
    name = name or click.prompt("full name")
    email = email or click.prompt("e-mail")
    return handle, name, email


@click.group(cls=DealflowGroup)
def company() -> None:
    """Your company's details, as every document and email shows them."""


@company.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the details as JSON (what `init --from` reads).")
def company_show(as_json: bool) -> None:
    """The company's name, address, phone, e-mail, tax ID, bank, currency, mail sender and terms:
    payment terms, the deposit a customer without terms of their own pays, and how late an
    invoice may be before a new order goes on credit hold."""
    from application.company import show_company

    shown_company = show_company()
    emit(shown_company, as_json, _company_text(shown_company))


@company.command("edit")
@company_options
@click.option("--json", "as_json", is_flag=True, help="Print the details as JSON.")
def company_edit(from_file: Path | None, as_json: bool, **company_opts: Any) -> None:
    """Change some of the company's details (the next documents and emails show them; a PDF
    already written keeps what it said). Audited."""
    from application.company import edit_company

    given = _company_given(from_file, company_opts)
    if not given:
        raise DomainError("company edit: say what changes, e.g. --bank \"IBAN … (bank)\" or --from FILE")
    done = edit_company(given, operator())
    out, changed = done["company"], done["changed"]
    emit(out, as_json, (f"changed: {', '.join(changed)}" if changed else "nothing changed") + "\n" + _company_text(out))


@click.command(cls=DealflowCommand)
@click.option("--json", "as_json", is_flag=True, help="Print only the summary, as one JSON object.")
@click.option("--data-dir", type=FilePath(file_okay=False, path_type=Path), default=Path("data/demo"),
              show_default=True, help="Fresh folder for the demo's database, documents and mail.")
def demo(as_json: bool, data_dir: Path) -> None:
    """Play the Glocial Machineries sale end to end, narrating each step."""
    from services.orchestration.api import quiet_prefect

    quiet_prefect()
    from ..demo import DemoError, print_summary, run_demo

    try:
        summary = run_demo(data_dir, out=sys.stderr if as_json else sys.stdout, start_api=ensure_api)
    except DemoError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)
