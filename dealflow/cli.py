"""The ``dealflow`` command. A user's mistake is one line on stderr and exit code 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from models import DomainError, NotFound, Role, utcnow
from models.text import ALLOWED_IN_NOTES, MAX_ID, has_control, printable, shown
from services.config import GATEWAY_PORT, PORTAL_PORT, UNVERIFIED_NOTE

from .prefect_api import PrefectUnavailable, ensure_api


def _emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text if text is not None else json.dumps(data, indent=2, default=str))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cell = lambda r, c: "" if r.get(c) is None else str(r[c])  # noqa: E731
    widths = {c: max(len(c), *(len(cell(r, c)) for r in rows)) for c in columns}
    head = "  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()
    body = ["  ".join(cell(r, c).ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join([head, *body])


def _fail(message: str, code: int = 2) -> None:
    """A user's mistake (or a service that is not there): one line on stderr, then exit."""
    click.echo(f"error: {printable(' '.join(str(message).split()), 500)}", err=True)
    sys.exit(code)


def _refuse_control_characters(ctx: click.Context) -> None:
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
            _refuse_control_characters(ctx)
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
            _fail(exc.format_message() + where, exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            _refuse_control_characters(ctx)
            return super().invoke(ctx)
        except DomainError as exc:
            _fail(str(exc))
        except PrefectUnavailable as exc:
            _fail(str(exc), 1)
        except Exception as exc:
            _database_error(exc)  # a value the database cannot hold, a database not set up
            if "httpx" in sys.modules:
                import httpx

                if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 401:
                    _fail(_unauthorized(), 1)
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
        _fail(f"{column or 'value'}: the database cannot hold it ({first})")
    if isinstance(exc, OperationalError | ProgrammingError):
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        _fail(f"database: {first}; is DATABASE_URL right, and has `dealflow init` run?")


def _unauthorized() -> str:
    from services.config import load_settings

    from .api_credential import credential_file

    return (f"prefect: the Prefect server at {os.environ.get('PREFECT_API_URL')} refused the request "
            f"(401 Unauthorized): set PREFECT_API_AUTH_STRING to its credential (for the server `dealflow up` "
            f"started: {credential_file(load_settings().data_dir)}, read by itself when PREFECT_API_URL "
            f"is that server's address; it is the machines' and administrators' credential: the team goes "
            f"through the gateway, `dealflow login HANDLE --gateway URL`)")


@click.group(name="dealflow", cls=DealflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """dealflow: every deal from lead to cash as one orchestrated, visible Prefect flow.

    Settings come from the environment: DATABASE_URL (default: SQLite in DEALFLOW_DATA_DIR, ./data),
    SMTP_HOST/SMTP_PORT/SMTP_USER/SMTP_PASSWORD/SMTP_SECURITY (default: mail written as .eml files),
    PREFECT_API_URL (default: the server `dealflow up` runs for the data folder, else a temporary
    local Prefect server per process), PREFECT_API_AUTH_STRING (its credential; read from the data
    folder for the server `dealflow up` runs).
    """
    from .api_credential import use_running_server

    if ctx.invoked_subcommand not in ("demo", "up", "down"):  # the demo plays in a folder and on a server of its own
        use_running_server()  # before Prefect is imported: it reads its settings once


# --- setup --------------------------------------------------------------------------------------

# the company's details as options of `init` and `company edit`: option -> field of models.company
COMPANY_OPTIONS = {"company_name": "name", "address": "address", "phone": "phone", "email": "email",
                   "tax_id": "tax_id", "bank": "bank", "currency": "currency", "mail_from": "mail_from",
                   "payment_terms": "payment_terms_days"}


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
        if field in asked:
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


@main.command()
@click.option("--demo-data", is_flag=True,
              help="Load the Glocial Machineries demo: its company (unless yours is set up), six staff and six products.")
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
    from sqlalchemy import select

    from models import StaffUser, seed
    from models.company import Company, company_values, set_up
    from services import keys
    from services.config import load_settings
    from services.db import migrate, session_scope
    from services.files import tighten

    settings = load_settings()
    created = keys.ensure_key_file(settings)
    cipher = keys.cipher(settings)
    migrate()
    interactive = _at_a_terminal() and not as_json
    given = _company_given(from_file, company_opts)
    enrolled = None
    with session_scope() as s:
        company = s.get(Company, 1)
        if company is None:
            from models.company import REQUIRED

            if not given and demo_data:
                given = None  # the demo's company, below
            elif any(f not in given for f in REQUIRED):
                if not interactive:
                    missing = next(f for f in REQUIRED if f not in given)
                    option = {"name": "--company-name"}.get(missing, f"--{missing.replace('_', '-')}")
                    raise DomainError(f"{missing}: your company's {missing.replace('_', ' ')} is needed ({option}, "
                                      f"or all details with --from FILE); or --demo-data for the Glocial demo")
                given = _ask_company(given)
            if given is not None:
                set_up(s, given, by=_operator())
        elif given:
            wanted = company_values(given, new=False)
            differs = [f for f, v in wanted.items() if getattr(company, f) != v]
            if differs:
                raise DomainError(f"{differs[0]}: the company is set up already; change it with "
                                  f"`dealflow company edit --{differs[0].replace('_', '-')} …`")
        added = seed.load(s, cipher) if demo_data else {"staff": 0, "products": 0}
        managers = [p for p in s.scalars(select(StaffUser)) if p.holds("manager") and p.active]
        if not managers:
            person = _first_manager(s, manager_handle, manager_name, manager_email, interactive)
            from models import identity

            uri = identity.enroll(s, person, cipher, by=_operator())
            enrolled = {"handle": person.handle, "uri": uri}
            added["staff"] += 1
        elif manager_handle and not any(p.handle == manager_handle.strip().lower() for p in managers):
            raise DomainError(f"manager: there is a manager already ({', '.join(p.handle for p in managers)}); "
                              f"add more with `dealflow staff add {manager_handle} --role manager …`")
        company = s.get(Company, 1).as_dict()
        s.commit()
    tightened = tighten(settings.data_dir)
    url = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", settings.database_url)
    text = (f"database ready at {url}; {company['name']} ({company['currency']}, {company['payment_terms_days']} "
            f"days' terms); added {added['staff']} staff and {added['products']} products")
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
    _emit({"database": url, **added, "company": company, "first_manager": enrolled,
           "secret_key_file": str(created) if created else None, "tightened": tightened}, as_json, text)


def _at_a_terminal() -> bool:
    """Whether a person types the answers (then `init` asks for what is missing)."""
    return sys.stdin.isatty()


def _first_manager(session, handle: str | None, name: str | None, email: str | None, interactive: bool):
    """The first manager, as given (or asked for at a terminal): a staff account with the manager role."""
    from models.staff import add_staff

    if not (handle and name and email):
        if not interactive:
            missing = "manager" if not handle else "manager-name" if not name else "manager-email"
            raise DomainError(f"{missing}: the first manager is needed (--manager HANDLE --manager-name NAME "
                              f"--manager-email EMAIL); they add the rest of the team")
        click.echo("The first manager (they add the rest of the team):")
        handle = handle or click.prompt("handle (e.g. ana)")
        name = name or click.prompt("full name")
        email = email or click.prompt("e-mail")
    return add_staff(session, handle, name, email, "manager")


@main.group()
def company() -> None:
    """Your company's details, as every document and email shows them."""


@company.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the details as JSON (what `init --from` reads).")
def company_show(as_json: bool) -> None:
    """The company's name, address, phone, e-mail, tax ID, bank, currency, mail sender and terms."""
    from services.company import details

    shown_company = details()
    _emit(shown_company, as_json, _company_text(shown_company))


@company.command("edit")
@company_options
@click.option("--json", "as_json", is_flag=True, help="Print the details as JSON.")
def company_edit(from_file: Path | None, as_json: bool, **company_opts: Any) -> None:
    """Change some of the company's details (the next documents and emails show them; a PDF
    already written keeps what it said). Audited."""
    from models.company import edit
    from services.db import session_scope

    given = _company_given(from_file, company_opts)
    if not given:
        raise DomainError("company edit: say what changes, e.g. --bank \"IBAN … (bank)\" or --from FILE")
    with session_scope() as s:
        changed_company, changed = edit(s, given, by=_operator())
        out = changed_company.as_dict()
        s.commit()
    _emit(out, as_json, (f"changed: {', '.join(changed)}" if changed else "nothing changed") + "\n" + _company_text(out))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print only the summary, as one JSON object.")
@click.option("--data-dir", type=FilePath(file_okay=False, path_type=Path), default=Path("data/demo"),
              show_default=True, help="Fresh folder for the demo's database, documents and mail.")
def demo(as_json: bool, data_dir: Path) -> None:
    """Play the Glocial Machineries sale end to end, narrating each step."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary Prefect server on SQLite logs "database is locked" tracebacks under the
    # demo's light concurrency; its clients retry them. Keep the narration readable.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    from .demo import DemoError, print_summary, run_demo

    try:
        summary = run_demo(data_dir, out=sys.stderr if as_json else sys.stdout, start_api=ensure_api)
    except DemoError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)


# --- leads and deals --------------------------------------------------------------------------

@main.group()
def lead() -> None:
    """Leads: the start of every deal."""


@lead.command("add")
@click.option("--company", required=True, help="The prospect's company name.")
@click.option("--contact", "contact_name", required=True, help="The person we talk to.")
@click.option("--email", required=True, help="The contact's e-mail address.")
@click.option("--owner", required=True, help="Handle of the sales rep who owns the lead.")
@click.option("--phone", default="", help="Phone number.")
@click.option("--address", default="", help="Postal address (billing and shipping until told otherwise).")
@click.option("--source", default="other", show_default=True,
              help="web, referral, trade_show, cold_call, email, partner or other.")
@click.option("--notes", default="", help="What we know so far.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def lead_add(as_json: bool, **fields: Any) -> None:
    """Add a lead. A lead whose e-mail and company are a known customer's becomes that customer's
    deal (their currency and terms) when it is converted."""
    from models.customers import customer_of_lead
    from models.pipeline import add_lead
    from services.db import session_scope

    with session_scope() as s:
        new = add_lead(s, **fields)
        s.commit()
        known = customer_of_lead(s, new.email, new.company)
        out = {"lead": new.id, "company": new.company, "owner": new.owner.handle,
               "customer": {"id": known.id, "name": known.name, "currency": known.currency} if known else None}
    of = (f"; a known customer: {out['customer']['name']} (customer {out['customer']['id']}"
          + (f", {out['customer']['currency']}" if out["customer"]["currency"] else "") + ")") if known else ""
    _emit(out, as_json, f"lead {out['lead']} added: {out['company']} (owner {out['owner']}){of}; "
                        f"start its deal with `dealflow deal start {out['lead']}`")


def _lead_row(lead, deal) -> dict[str, Any]:
    return {"lead": lead.id, "company": lead.company, "contact": lead.contact_name, "email": lead.email,
            "phone": lead.phone, "source": lead.source, "status": lead.status, "owner": lead.owner.handle,
            "notes": lead.notes, "qualification_notes": lead.qualification_notes,
            "budget": str(lead.budget) if lead.budget is not None else None, "timeline": lead.timeline,
            "created": lead.created_at.isoformat(timespec="seconds"), "deal": deal.number if deal else None}


@lead.command("list")
@click.option("--status", type=click.Choice(["new", "qualified", "disqualified", "converted"]),
              help="Only leads in this state.")
@click.option("--owner", help="Only this sales rep's leads (handle).")
@click.option("--json", "as_json", is_flag=True, help="Print the leads as JSON.")
def lead_list(status: str | None, owner: str | None, as_json: bool) -> None:
    """Every lead, newest first: company, contact, state, owner, and its deal if started."""
    from sqlalchemy import select

    from models import Deal, Lead, StaffUser
    from services.db import session_scope

    with session_scope() as s:
        query = select(Lead).order_by(Lead.id.desc())
        if status:
            query = query.where(Lead.status == status)
        if owner:
            query = query.join(StaffUser, Lead.owner_id == StaffUser.id).where(StaffUser.handle == owner.strip().lower())
        deals = {d.lead_id: d for d in s.scalars(select(Deal))}
        rows = [_lead_row(lead, deals.get(lead.id)) for lead in s.scalars(query)]
    _emit(rows, as_json, _table(rows, ["lead", "company", "contact", "status", "owner", "deal"]))


@lead.command("show")
@click.argument("lead_id", type=click.IntRange(1, MAX_ID))
@click.option("--json", "as_json", is_flag=True, help="Print the lead as JSON.")
def lead_show(lead_id: int, as_json: bool) -> None:
    """One lead: who, how to reach them, where it came from, what we know, and its deal."""
    from sqlalchemy import select

    from models import Deal, Lead
    from services.db import session_scope

    with session_scope() as s:
        lead = s.get(Lead, lead_id)
        if lead is None:
            raise NotFound("lead", lead_id)
        row = _lead_row(lead, s.scalars(select(Deal).where(Deal.lead_id == lead.id)).one_or_none())
    text = [f"lead {row['lead']} · {row['company']} · {row['status']} · owner {row['owner']}",
            f"contact: {row['contact']} <{row['email']}>" + (f", {row['phone']}" if row["phone"] else ""),
            f"source: {row['source'].replace('_', ' ')}; added {row['created']} UTC"]
    if row["notes"]:
        text.append(f"notes: {row['notes']}")
    if row["qualification_notes"] or row["budget"] or row["timeline"]:
        from services.company import details

        budget = f"{row['budget']} {details()['currency']}" if row["budget"] else "not given"
        text.append(f"qualification: {row['qualification_notes'] or 'no notes'}; budget {budget}; "
                    f"timeline {row['timeline'] or 'not given'}")
    text.append(f"deal: {row['deal']} (`dealflow deal show {row['deal']}`)" if row["deal"]
                else f"deal: not started (`dealflow deal start {row['lead']}`)")
    _emit(row, as_json, "\n".join(text))


@main.group()
def deal() -> None:
    """Deals: start one, look at one, list them."""


NO_SERVER_NOTE = ("no `dealflow up` runs for this data folder, and PREFECT_API_URL is not set: the deal runs on a "
                  "temporary Prefect server of its own, which the team's UI does not show (`dealflow up` starts one "
                  "it does; commands in other terminals then use it)")


def _deal_deployment():
    """The server's 'deal' deployment, when PREFECT_API_URL points at a server that has one."""
    if not os.environ.get("PREFECT_API_URL"):
        return None
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name("deal/deal")
        except ObjectNotFound:
            return None


RECORD_ID = click.IntRange(1, MAX_ID)  # ids are 32-bit integers in the database


@deal.command("start")
@click.argument("lead_id", type=RECORD_ID)
@click.option("--detach", is_flag=True,
              help="Without a server deployment: run the flow in a background process (log in DATA_DIR/logs).")
@click.option("--here", is_flag=True, help="Run the flow in this process even if the server has a 'deal' deployment.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def deal_start(lead_id: int, detach: bool, here: bool, as_json: bool) -> None:
    """Start the deal for a lead. On a Prefect server with the 'deal' deployment (`dealflow up`),
    a worker runs it and its waits suspend; otherwise it runs here (or in the background)."""
    from models import process
    from services.config import load_settings
    from services.db import session_scope

    with session_scope() as s:
        d = process.start_deal(s, lead_id, by="cli")
        s.commit()
        number, run_id, status = d.number, d.flow_run_id, d.status
    if status != "open":
        raise DomainError(f"lead: its deal {number} is already {status}")
    _refuse_second_run(number, run_id)
    deployment = None if here else _deal_deployment()
    if deployment is not None:
        from prefect.deployments import run_deployment

        # one run per deal even if two people press start at once: the key makes the server
        # return the first run, and the run's id is on the deal before any worker starts it
        run = run_deployment(deployment.id, parameters={"deal_number": number}, timeout=0,
                             tags=["dealflow"], idempotency_key=f"deal-{number}")
        from models.deal import deal_by_number

        with session_scope() as s:
            process.attach_flow_run(s, deal_by_number(s, number), str(run.id))
            s.commit()
        from services.links import run_page

        page = run_page(str(run.id))
        _emit({"deal": number, "flow_run_id": str(run.id), "ui": page}, as_json,
              f"{number} started on the 'deal' deployment as flow run {run.id}\n"
              f"its page (each wait: menu ⋮ → Resume): {page}")
        return
    if detach:
        logs = load_settings().data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = open(logs / f"{number}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen([sys.executable, "-m", "dealflow.run_deal", number], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        _emit({"deal": number, "pid": proc.pid, "log": log.name}, as_json,
              f"{number} started in the background (pid {proc.pid}, log {log.name})")
        if not os.environ.get("PREFECT_API_URL"):
            click.echo(f"note: {NO_SERVER_NOTE}", err=True)
        return
    click.echo(f"{number}: running its flow here; answer its waits from another terminal "
               f"(`dealflow inbox`, `dealflow answer {number} STEP ...`)", err=True)
    if not os.environ.get("PREFECT_API_URL"):
        click.echo(f"note: {NO_SERVER_NOTE}", err=True)
    ensure_api()
    from flows.deal import run_here
    result = run_here(number)
    _emit(result, as_json, f"{number} ended: {result['status']}")


def _refuse_second_run(number: str, run_id: str | None) -> None:
    """One live flow run per deal: a second driver would open every wait twice."""
    if not run_id:
        return
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(UUID(run_id)).state
        except ObjectNotFound:
            return  # a run on another (or a reset) Prefect server: start afresh
    if state is not None and not state.is_final():
        raise DomainError(f"lead: deal {number} already runs as flow run {run_id} ({state.name}); "
                          f"answer its waits with `dealflow answer`")


@deal.command("show")
@click.argument("deal_number")
@click.option("--json", "as_json", is_flag=True, help="Print the deal as JSON.")
def deal_show(deal_number: str, as_json: bool) -> None:
    """Everything about one deal: stage, waits, documents, money, mail."""
    from services.links import run_page

    from . import remote

    if signed := remote.current():
        from urllib.parse import quote

        data = signed.call("GET", f"/dealflow/api/deals/{quote(deal_number.strip(), safe='')}")
        data["run_page"] = run_page(data["flow_run_id"], {"DEALFLOW_GATEWAY_URL": signed.url})
    else:
        from models.deal import deal_by_number
        from services.db import session_scope
        from services.views import deal_summary

        with session_scope() as s:
            data = deal_summary(s, deal_by_number(s, deal_number))
        data["run_page"] = run_page(data["flow_run_id"])
    if as_json:
        _emit(data, True)
        return
    cur = data["currency"]
    from services.views import waiting_for

    lines = [f"{data['deal']} · {data['customer']} · {data['where']} · "
             f"owner {data['owner']}" + (f" · engineer {data['engineer']}" if data["engineer"] else "")]
    if data["waiting_for"]:
        w = data["waiting_for"]
        lines.append(f"waiting for {waiting_for(w['step'], w['roles'])} ({w['key']}) since {w['since']} UTC")
        if data["run_page"]:
            lines.append(f"answer it on the run's page (menu ⋮ → Resume): {data['run_page']}")
    for note in data.get("sales_notes") or []:
        lines.append(f"{note['who']}: {' '.join(note['text'].split())}")
    for r in data["estimate_revisions"]:
        lines.append(f"estimate {r['number']}: {r['status']}, total {r['total']} {cur}")
    if data["order"]:
        o = data["order"]
        lines.append(f"order {o['number']}: {o['status']}, total {o['total']} {cur}, "
                     f"QA attempts {len(o['qa_attempts'])}")
    if data["receipt"]:
        lines.append(f"receipt {data['receipt']['number']}: {data['receipt']['amount']} {cur}")
    for sh in data["shipments"]:
        shipped = ", ".join(f"{qty} × {sku}" for sku, qty in sh["lines"].items())
        lines.append(f"shipment {sh['number']}: {sh['carrier']} {sh['tracking_number']}: {shipped}")
    if data["invoice"]:
        i = data["invoice"]
        lines.append(f"invoice {i['number']}: total {i['total']} {cur}, paid {i['paid']} {cur}, due {i['due']} {cur} "
                     f"by {i['due_date']}")
    if data["documents"]:
        from services.config import load_settings

        folder = None if signed else load_settings().data_dir / "documents"  # through the gateway: not here
        lines.append("documents:")
        lines += [f"  {d['number']}: {folder / d['pdf'] if folder else d['pdf']}" for d in data["documents"]]
    else:
        lines.append("documents: none")
    lines.append(f"emails: {len(data['emails'])} ({sum(m['status'] == 'sent' for m in data['emails'])} sent)")
    click.echo("\n".join(lines))


@deal.command("list")
@click.option("--status", type=click.Choice(["open", "won", "lost"]), help="Only deals in this state.")
@click.option("--waiting-for", "waiting_for", type=click.Choice([*(r.value for r in Role), "customer"]),
              help="Only deals waiting at a step this role answers (e.g. qa), or for the customer.")
@click.option("--json", "as_json", is_flag=True, help="Print the deals as JSON.")
def deal_list(status: str | None, waiting_for: str | None, as_json: bool) -> None:
    """All deals, newest first: where each stands and what it waits for."""
    from sqlalchemy import select

    from models import Deal
    from services.db import session_scope
    from services.views import where_it_stands

    with session_scope() as s:
        q = select(Deal).order_by(Deal.id.desc())
        if status:
            q = q.where(Deal.status == status)
        deals = list(s.scalars(q))
        if waiting_for:
            deals = [d for d in deals if d.open_wait is not None and (
                waiting_for in d.open_wait.role_list or (waiting_for == "customer" and d.open_wait.step == "decision"))]
        rows = [{"deal": d.number, "customer": d.customer_name, "status": d.status, "where": where_it_stands(d),
                 "owner": d.owner.handle, "waiting_for": d.open_wait.key if d.open_wait else ""} for d in deals]
    _emit(rows, as_json, _table(rows, ["deal", "customer", "where", "owner", "waiting_for"]))


# --- the pipeline -------------------------------------------------------------------------------

EARLIEST, LATEST = datetime(2000, 1, 1), datetime(2100, 1, 1)


def _naive_utc(value: str, option: str) -> datetime:
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


def _as_of(value: str | None) -> datetime | None:
    """An --as-of time: ISO, with or without an offset; returned as naive UTC like the database."""
    return _naive_utc(value, "as-of") if value else None


def _max_ahead(unit: str) -> int:
    """How many days or hours ahead a follow-up may be due: the follow-up's own rule."""
    from models import FollowUp

    ahead = FollowUp.LATEST_AHEAD
    return ahead.days if unit == "d" else int(ahead.total_seconds() // 3600)


def _parse_due(value: str) -> datetime:
    m = re.fullmatch(r"\+(\d+)([hd])", value.strip())
    if m:
        digits, unit = m.group(1), m.group(2)
        limit = _max_ahead(unit)
        n = int(digits) if len(digits) <= 9 else limit + 1  # not a number of a hundred digits
        if n > limit:
            raise DomainError(f"due: +{shown(digits, 20)[1:-1]}{unit} is more than ten years ahead "
                              f"(at most +{limit}{unit})")
        return utcnow() + (timedelta(hours=n) if unit == "h" else timedelta(days=n))
    if value.strip().startswith("+"):
        raise DomainError(f"due: must be +Nd or +Nh (e.g. +2d), or an ISO date/time, got {shown(value)}")
    return _naive_utc(value, "due")


@main.group()
def followup() -> None:
    """Follow-ups on an opportunity."""


@followup.command("add")
@click.argument("deal_number")
@click.option("--by", required=True, help="Your staff handle.")
@click.option("--kind", required=True, help="call, email, meeting, demo or site_visit.")
@click.option("--due", required=True, help="When: ISO date/time, or +2d / +4h from now.")
@click.option("--notes", default="", help="What the follow-up is for.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def followup_add(deal_number: str, by: str, kind: str, due: str, notes: str, as_json: bool) -> None:
    """Schedule a follow-up."""
    from models import pipeline
    from models.deal import deal_by_number
    from services.db import session_scope

    with session_scope() as s:
        f = pipeline.add_followup(s, deal_by_number(s, deal_number), by=by, kind=kind, due_at=_parse_due(due),
                                  notes=notes)
        s.commit()
        out = {"followup": f.id, "deal": deal_number.upper(), "kind": f.kind, "due_at": f.due_at.isoformat()}
    _redescribe(out["deal"])
    _emit(out, as_json, f"follow-up {out['followup']} ({out['kind']}) due {out['due_at']}")


def _redescribe(deal_number: str) -> None:
    """The deal's waiting form says what changed (its follow-ups, its stage): on the wait, and
    in the run's stored form where a Prefect server has it."""
    if os.environ.get("PREFECT_API_URL"):
        from flows.waits import refresh_description

        try:
            refresh_description(deal_number)
        except Exception as exc:  # noqa: BLE001 - the change is made; the form says the old words a while
            click.echo(f"note: the waiting form could not be rewritten ({type(exc).__name__}); it says what it "
                       f"said before until the deal moves on", err=True)
    else:
        from tasks.deal_steps import redescribe_open_wait

        redescribe_open_wait(deal_number)


@followup.command("done")
@click.argument("followup_id", type=RECORD_ID)
@click.option("--by", required=True, help="Your staff handle.")
@click.option("--outcome", required=True, help="What came of it.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def followup_done(followup_id: int, by: str, outcome: str, as_json: bool) -> None:
    """Mark a follow-up done, with its outcome."""
    from sqlalchemy import select

    from models import Deal, pipeline
    from services.db import session_scope

    with session_scope() as s:
        f = pipeline.complete_followup(s, followup_id, by=by, outcome=outcome)
        s.commit()
        out = {"followup": f.id, "done_at": f.done_at.isoformat()}
        number = f.opportunity.lead and s.scalars(select(Deal.number).where(Deal.lead_id == f.opportunity.lead_id)).first()
    if number:
        _redescribe(number)
    _emit(out, as_json, f"follow-up {followup_id} done")


@main.group()
def opportunity() -> None:
    """The opportunity: pipeline stage and hand-off to an engineer."""


@opportunity.command("stage")
@click.argument("deal_number")
@click.argument("stage")
@click.option("--by", required=True, help="Your staff handle.")
@click.option("--probability", type=click.IntRange(0, 100), help="Override the stage's default probability (0-100).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def opportunity_stage(deal_number: str, stage: str, by: str, probability: int | None, as_json: bool) -> None:
    """Move the opportunity to a pipeline stage."""
    from models import pipeline
    from models.deal import deal_by_number
    from services.db import session_scope

    with session_scope() as s:
        d = deal_by_number(s, deal_number)
        pipeline.move_stage(s, d, by=by, stage=stage, probability=probability)
        s.commit()
        out = {"deal": d.number, "stage": d.opportunity.stage, "probability": d.opportunity.probability}
    _redescribe(out["deal"])
    _emit(out, as_json, f"{out['deal']} at {out['stage']} ({out['probability']}%)")


@opportunity.command("assign")
@click.argument("deal_number")
@click.argument("engineer")
@click.option("--by", help="Your staff handle (a sales rep; the session's, when you logged in).")
@click.option("--code", metavar="NNNNNN", help="Your one-time code, for an answer without `dealflow login`.")
@click.option("--note", default="", help="What the engineer should know.")
def opportunity_assign(deal_number: str, engineer: str, by: str | None, code: str | None, note: str) -> None:
    """Hand the opportunity to a sales engineer (answers the deal's hand-off wait)."""
    typed = {"by": by or "", "engineer": engineer, "note": note}

    def read() -> dict[str, Any]:
        if not by and not _logged_in():
            raise DomainError("by: say who answers (--by HANDLE), or log in first (`dealflow login HANDLE`)")
        return {k: v for k, v in typed.items() if v or k != "by"}

    payload = _answer_arguments(deal_number, "handoff", read, typed)
    _answer(deal_number, "handoff", payload, code=code, wait=True, as_json=False)


opportunity_assign.checks_its_own_arguments = True


# --- staff accounts, and proving who answers -------------------------------------------------------

def _operator() -> str:
    """Who runs an account command, for the audit log: the logged-in person, else the OS user."""
    import getpass

    login = _logged_in()
    if login:
        return login.handle
    try:
        return printable(f"cli:{getpass.getuser()}", 40)
    except (KeyError, OSError):
        return "cli"


def _staff_row(p) -> dict[str, Any]:
    from models import identity

    return {"handle": p.handle, "name": p.name, "email": p.email, "roles": p.role_list,
            "enabled": p.active, "enrolled": p.enrolled,
            "locked_until": p.locked_until.isoformat(timespec="seconds")
            if p.locked_until and identity.locked(p, utcnow()) else None}


@main.group()
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
        audit.record(s, _operator(), "staff.added", subject=person.handle, roles=person.role_list)
        row = _staff_row(person)
        s.commit()
    _emit(row, as_json, f"added {row['handle']} ({', '.join(row['roles'])}); enroll them with "
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
    _emit(rows, as_json, _table(shown_rows, ["handle", "name", "email", "roles", "enabled", "enrolled",
                                             "locked_until"]))


def _change_staff(handle: str, change, action: str, **details: Any) -> dict[str, Any]:
    from models import audit
    from models.staff import staff_member
    from services.db import session_scope

    with session_scope() as s:
        person = staff_member(s, handle)
        change(s, person)
        audit.record(s, _operator(), action, subject=person.handle, **details)
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
    _emit(row, as_json, f"{row['handle']}: {', '.join(row['roles'])}")


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

    login = _logged_in()
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
            by = _operator()
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
        uri = identity.enroll(s, person, cipher, by=_operator())
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
        _emit({"handle": handle, "uri": uri, "png": str(path)}, True)
        return
    click.echo(f"{handle}: scan this with an authenticator app (or type the URI's secret):\n{uri}")
    qr.terminal(compact=True)
    click.echo(f"The same QR code as a PNG: {path} (mode 0600; delete it once scanned).")


@main.command()
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

    from .login import Login, save

    if code is None:
        code = click.prompt("One-time code (the 6 digits your authenticator app shows)", hide_input=True, err=True)
    if gateway_url:
        from . import remote

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


@main.command()
def logout() -> None:
    """Close your session (this database's); answers need a code or a new login after it."""
    from models import identity
    from services.db import session_scope

    from . import remote
    from .login import forget

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


# --- running it for real ---------------------------------------------------------------------------

@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=4200, show_default=True,
              help="Port of the Prefect server (on this machine only: the machines' and administrators'; "
                   "the team opens the gateway).")
@click.option("--executors", "--workers", "executors", type=click.IntRange(1, 16), default=1, show_default=True,
              help="How many deal executors to start (each runs many deals in one process).")
@click.option("--portal-port", type=click.IntRange(1, 65535), default=PORTAL_PORT, show_default=True,
              help="Port of the customer portal.")
@click.option("--gateway-port", type=click.IntRange(1, 65535), default=GATEWAY_PORT, show_default=True,
              help="Port of the gateway: the address people open (each signs in as themselves).")
@click.option("--json", "as_json", is_flag=True, help="Print the addresses and pids as JSON.")
def up(port: int, executors: int, portal_port: int, gateway_port: int, as_json: bool) -> None:
    """Start a Prefect server, deploy prefect.yaml, a worker, deal executor(s), the customer
    portal and the gateway (the team's door to the Prefect UI), in the background."""
    from .stack import up as stack_up

    try:
        info = stack_up(port=port, executors=executors, say=(lambda *_: None) if as_json else click.echo,
                        portal_port=portal_port, gateway_port=gateway_port)
    except RuntimeError as exc:
        raise DomainError(f"up: {exc} (what did start is still running: `dealflow down` stops it)") from None
    from services.config import load_settings

    verified = load_settings().answer_codes
    if as_json:
        _emit({**info, "answers_verified": verified}, True)
    elif not verified:
        click.echo(f"note: {UNVERIFIED_NOTE}")


@main.command()
@click.option("--pool", default="dealflow-deals", show_default=True, help="The work pool of the deal deployment.")
@click.option("--slots", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Deals moving at the same time (threads); waiting deals take none.")
@click.option("--poll", type=click.FloatRange(0.05, 60), default=0.25, show_default=True,
              help="Seconds between looks for resumed or new runs.")
@click.option("--adopt", multiple=True, metavar="HOST",
              help="Also take over runs left running by executors of this (dead) host.")
@click.option("--status-file", type=FilePath(dir_okay=False, path_type=Path), default=None,
              help="Write the runs in progress here as JSON, for monitoring.")
def executor(pool: str, slots: int, poll: float, adopt: tuple[str, ...], status_file: Path | None) -> None:
    """Run the deal deployment's runs in this process until stopped (SIGTERM or Ctrl-C).

    Like `prefect worker start --pool dealflow-deals`, without a new process per run: a deal's run
    starts again after every answer, and this takes it from the answer to its next wait in about
    a second. Needs PREFECT_API_URL.
    """
    import logging

    from .executor import serve

    if not os.environ.get("PREFECT_API_URL"):
        raise DomainError("executor: PREFECT_API_URL is not set; point it at your Prefect server's API")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dealflow").setLevel(logging.INFO)
    logging.getLogger("services.mailer").setLevel(logging.INFO)  # a line per email sent
    serve(pool=pool, slots=slots, poll=poll, status_file=status_file, adopt=adopt)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (behind an HTTPS proxy, keep 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=PORTAL_PORT, show_default=True, help="Port to listen on.")
@click.option("--trusted-proxies", default="", metavar="ADDRESSES",
              help="The HTTPS proxy's address(es) (comma-separated), whose X-Forwarded-For names the "
                   "customer's address; none by default (then the connection's address counts).")
def portal(host: str, port: int, trusted_proxies: str) -> None:
    """Serve the customer portal until stopped: the pages behind the links in estimate and invoice
    emails, where the customer accepts an estimate, asks for changes or declines, and sees an
    invoice's balance. Links in mail start with DEALFLOW_PUBLIC_URL. Needs PREFECT_API_URL (the
    customer's answer resumes the deal's run) and the same secret key as the flows."""
    import logging

    from services import keys
    from services.config import load_settings

    from .portal import serve as serve_portal

    settings = load_settings()
    keys.portal_secret(settings)  # no key: one clear line now, not an error per page
    ensure_api()  # a customer's answer resumes the deal's run: the Prefect API is needed from the start
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dealflow.portal").setLevel(logging.INFO)
    click.echo(f"portal: http://{host}:{port} (links in mail start with {settings.public_url}; "
               f"set DEALFLOW_PUBLIC_URL to change that)")
    serve_portal(host=host, port=port, settings=settings, trusted_proxies=trusted_proxies)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (behind an HTTPS proxy, keep 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=GATEWAY_PORT, show_default=True,
              help="Port to listen on.")
@click.option("--upstream", default=None, metavar="URL",
              help="The Prefect server it fronts (default: PREFECT_API_URL without /api).")
@click.option("--public-url", default=None, metavar="URL",
              help="The address people open, e.g. https://prefect.example.com behind a TLS proxy "
                   "(DEALFLOW_GATEWAY_URL): its origin is the only one allowed to make changes, "
                   "and with https its cookies are Secure.")
@click.option("--trusted-proxies", default="", metavar="ADDRESSES",
              help="The HTTPS proxy's address(es) (comma-separated), whose X-Forwarded-For names the person's "
                   "address (failed sign-ins are counted by it); none by default.")
def gateway(host: str, port: int, upstream: str | None, public_url: str | None, trusted_proxies: str) -> None:
    """Serve the team's door to the Prefect UI and API: each person signs in with their handle
    and one-time code, reaches what their role allows, and every Resume is named and sealed here.
    Needs the Prefect server's credential (PREFECT_API_AUTH_STRING, or the one `dealflow up`
    keeps), the business database and the secret key."""
    from services import keys
    from services.config import load_settings

    from .gateway import config_from_env
    from .gateway import serve as serve_gateway

    keys.seal_key()  # no key: one clear line now
    if not load_settings().answer_codes and host not in ("127.0.0.1", "localhost", "::1"):
        raise DomainError(f"host: with DEALFLOW_ANSWER_CODES=off a handle is all it takes to sign in; the gateway "
                          f"then listens on this machine only (127.0.0.1), not on {host}")
    try:
        config = config_from_env(upstream, public_url)
    except ValueError as exc:
        raise DomainError(f"upstream: {exc}") from None
    if not config.credential:
        click.echo("note: no Prefect credential (PREFECT_API_AUTH_STRING): the Prefect server behind the gateway "
                   "must then be reachable by no one else", err=True)
    click.echo(f"gateway: http://{host}:{port} in front of {config.upstream}")
    serve_gateway(config, host=host, port=port, trusted_proxies=trusted_proxies)


@main.command()
def down() -> None:
    """Stop what `dealflow up` started (workers first, then the server)."""
    from .stack import down as stack_down

    if not stack_down(say=click.echo):
        click.echo("nothing was running")


# --- waits ----------------------------------------------------------------------------------------

def _run_state(run_id: str) -> str:
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(UUID(run_id)).state
        except ObjectNotFound:
            return "not on this server"
    return state.name if state else "unknown"


def _waiting_runs() -> dict[str, str]:
    """Flow run id -> state name of every deal run Prefect holds as Paused or Suspended, plus the
    runs the database says are waiting but Prefect does not (their real state, to look into)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType

    states: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
                tags=FlowRunFilterTags(all_=["dealflow"])), limit=200, offset=offset)
            states.update({str(r.id): r.state.name for r in runs})
            if len(runs) < 200:
                break
            offset += 200
    return states


@main.command()
@click.option("--role", type=click.Choice([r.value for r in Role]), help="Only waits this role may answer (e.g. qa).")
@click.option("--json", "as_json", is_flag=True, help="Print the waits as JSON.")
def inbox(role: str | None, as_json: bool) -> None:
    """Deals waiting for a person: for what, since when, for which role. With PREFECT_API_URL set,
    each row also shows its run's state on the server (Suspended, Paused, or what went wrong)."""
    from . import remote

    if signed := remote.current():  # through the gateway, which asked its Prefect server
        from urllib.parse import quote

        rows = signed.call("GET", "/dealflow/api/inbox" + (f"?role={quote(role)}" if role else ""))
        with_runs = any("run" in r for r in rows)
    else:
        from services.db import session_scope
        from services.views import inbox as inbox_rows

        states = _waiting_runs() if os.environ.get("PREFECT_API_URL") else None
        with_runs = states is not None
        with session_scope() as s:
            rows = inbox_rows(s, role, states)
    for r in rows:
        r["who"] = " or ".join(r["roles"])
        if not signed and with_runs and r["run"] == "not on this server" and r["flow_run_id"]:
            r["run"] = _run_state(r["flow_run_id"])  # e.g. Running for a moment, or Crashed
    from datetime import datetime

    from models.clock import utcnow
    from models.text import ago
    from services.config import load_settings
    from services.links import run_page

    for r in rows:
        r["link"] = run_page(r["flow_run_id"], {"DEALFLOW_GATEWAY_URL": signed.url} if signed else os.environ)
    if not load_settings().answer_codes:
        click.echo(f"note: {UNVERIFIED_NOTE}", err=True)
    # the key names the step and its round (estimate-rev-2, qa-attempt-2): one column, not two
    columns = ["deal", "customer", "step", "who", "waiting", "amount"] + (["run"] if with_runs else []) + ["link"]
    shown_rows = [{**r, "step": r["key"], "waiting": ago((utcnow() - datetime.fromisoformat(r["since"])).total_seconds()),
                   "amount": f"{r['amount']} {r['currency']}" if r["amount"] else ""} for r in rows]
    _emit(rows, as_json, _table(shown_rows, columns)
          + ("\n(answer on the link's page: menu ⋮ → Resume; or `dealflow answer DEAL STEP`)" if rows else ""))


def _answer_arguments(deal_number: str, step: str, read: Any, as_typed: dict[str, Any]) -> dict[str, Any]:
    """An answer's arguments, checked and read (``read()``); refused before it was even read
    whole, it is still on the record, as every refused answer is. Commands that answer a wait
    check their arguments here, not in ``DealflowCommand``, so that the refusal is recorded."""
    from . import remote

    try:
        _refuse_control_characters(click.get_current_context())
        return read()
    except DomainError as exc:
        if remote.current() is None:  # through the gateway, the gateway keeps the record
            from . import answers

            answers.record_refusal(deal_number, step, as_typed, str(exc))
        raise


def _answer_payload(input_json: str | None, sets: tuple[str, ...], by: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if input_json:
        try:
            text = Path(input_json[1:]).read_text() if input_json.startswith("@") else input_json
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise DomainError(f"input: cannot read {shown(input_json[1:], 200)} "
                              f"({getattr(exc, 'strerror', None) or 'not UTF-8 text'})") from None
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DomainError(f"input: is not valid JSON ({exc.msg} at character {exc.pos})") from None
        except (ValueError, RecursionError) as exc:  # a number of thousands of digits, nesting without end
            raise DomainError(f"input: is not JSON dealflow can read ({type(exc).__name__})") from None
        if not isinstance(payload, dict):
            raise DomainError("input: must be a JSON object")
    for item in sets:
        if "=" not in item:
            raise DomainError(f"set: expected FIELD=VALUE, got {shown(item)}")
        key, _, value = item.partition("=")
        payload[key.strip()] = value if key.strip() == "code" else _coerce(value)  # 012345 stays text
    if by:
        payload["by"] = by
    from . import remote

    if not payload.get("by") and not _logged_in() and remote.current() is None:
        raise DomainError("by: say who answers (--by HANDLE), or log in first (`dealflow login HANDLE`)")
    return payload


def _logged_in():
    from .login import current

    return current()


def _proof(code: str | None) -> dict[str, Any]:
    """How this answer is proven: --code, else the session of `dealflow login`, else (at a
    terminal) a code asked for, hidden. With DEALFLOW_ANSWER_CODES=off nothing is needed."""
    from services.config import load_settings

    if code is not None:
        return {"code": code}
    if login := _logged_in():
        return {"login": login}
    if load_settings().answer_codes and sys.stdin.isatty():
        return {"code": click.prompt("One-time code (the 6 digits your authenticator app shows)",
                                     hide_input=True, err=True)}
    return {}  # the check then says what proof is missing


def _coerce(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
    except (ValueError, RecursionError):  # a number of thousands of digits, nesting without end
        raise DomainError(f"set: {shown(value)} is not a value dealflow can read") from None


def _answer(deal_number: str, step: str, payload: dict[str, Any], *, code: str | None, wait: bool,
            as_json: bool) -> None:
    from . import answers, remote

    if signed := remote.current():
        _answer_through(signed, deal_number, step, payload, code=code, wait=wait, as_json=as_json)
        return
    try:
        proof = _proof(code)
    except DomainError as exc:
        answers.record_refusal(deal_number, step, payload, str(exc))
        raise
    w = answers.answer(deal_number, step, payload, **proof)
    if not wait:
        _emit({"deal": deal_number.upper(), "key": w.key, "status": "sent"}, as_json,
              f"{w.key}: answer sent to {deal_number.upper()}")
        return
    try:
        closed = answers.wait_closed(deal_number, w.key)
    except TimeoutError:
        click.echo(f"{w.key}: answer sent, but the flow has not recorded it yet; see "
                   f"`dealflow deal show {deal_number.upper()}`", err=True)
        sys.exit(1)
    if closed.status == "refused":
        raise DomainError(f"{closed.key} refused by the flow: {closed.refusal_reason}")
    _emit({"deal": deal_number.upper(), "key": w.key, "status": closed.status, "by": closed.answered_by},
          as_json, f"{w.key}: answered by {closed.answered_by}")


def _answer_through(signed, deal_number: str, step: str, payload: dict[str, Any], *, code: str | None,
                    wait: bool, as_json: bool) -> None:
    """`dealflow answer` for a person signed in at the gateway: it checks, names and seals."""
    import time
    from urllib.parse import quote

    if code is not None or "code" in payload:
        raise DomainError(f"code: you are signed in at {signed.url} as {signed.handle}: no code is needed "
                          f"(`dealflow logout` to answer as someone else)")
    if payload.get("by") not in (None, "", signed.handle):
        raise DomainError(f"by: you are signed in at {signed.url} as {signed.handle}; `dealflow logout` to "
                          f"answer as someone else")
    sent = signed.call("POST", "/dealflow/api/answer", {"deal": deal_number, "step": step, "answer": payload})
    if not wait:
        _emit({"deal": sent["deal"], "key": sent["key"], "status": "sent"}, as_json,
              f"{sent['key']}: answer sent to {sent['deal']}")
        return
    deadline = time.monotonic() + 60
    while True:
        closed = signed.call("GET", f"/dealflow/api/deals/{quote(sent['deal'])}/waits/{quote(sent['key'])}")
        if closed["status"] != "open":
            break
        if time.monotonic() > deadline:
            click.echo(f"{sent['key']}: answer sent, but the flow has not recorded it yet; see "
                       f"`dealflow deal show {sent['deal']}`", err=True)
            sys.exit(1)
        time.sleep(0.5)
    if closed["status"] == "refused":
        raise DomainError(f"{closed['key']} refused by the flow: {closed['reason']}")
    _emit({"deal": sent["deal"], "key": sent["key"], "status": closed["status"], "by": closed["by"]},
          as_json, f"{sent['key']}: answered by {closed['by']}")


@main.command()
@click.argument("deal_number")
@click.argument("step")
@click.option("--by", help="Your staff handle (the session's, when you logged in).")
@click.option("--code", metavar="NNNNNN", help="Your one-time code, for an answer without `dealflow login` "
                                               "(asked for, hidden, at a terminal).")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="A field of the answer; VALUE is read as JSON when it parses (true, 12, [..]).")
@click.option("--input", "input_json", help="The whole answer as a JSON object (or @file.json).")
@click.option("--no-wait", is_flag=True, help="Do not wait for the flow to record the answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def answer(deal_number: str, step: str, by: str | None, code: str | None, sets: tuple[str, ...],
           input_json: str | None, no_wait: bool, as_json: bool) -> None:
    """Answer the wait DEAL_NUMBER is at. STEP is the wait's step (qualify, handoff, estimate,
    decision, qa, shipment, payment) or its key (e.g. qa-attempt-2).

    \b
    Every answer is proven: made in a session (`dealflow login HANDLE`, once), each answer is
    signed with the session's key; or give your one-time code with --code.

    \b
    dealflow login sofia
    dealflow answer DEAL-0001 qualify --set qualified=true --set budget=150000
    dealflow answer DEAL-0001 estimate --by mark --code 123456 --input '{"lines": [{"sku": "VMC-850", "quantity": 1}]}'
    """
    typed_sets = [f"{k}=(not recorded)" if k.strip() == "code" else item
                  for item in sets for k in [item.partition("=")[0]]]
    payload = _answer_arguments(deal_number, step, lambda: _answer_payload(input_json, sets, by),
                                {"by": by or "", "input": _typed_input(input_json), "set": typed_sets})
    _answer(deal_number, step, payload, code=code, wait=not no_wait, as_json=as_json)


def _typed_input(input_json: str | None) -> str:
    """--input as typed, for the record of a refusal; not when it may carry a one-time code."""
    if input_json and re.search(r"code|\\u00[0-9a-fA-F]{2}", input_json):
        return "(not recorded: it may carry a one-time code)"
    return input_json or ""


answer.checks_its_own_arguments = True


@main.group(invoke_without_command=True)
@click.option("--status", type=click.Choice(["pending", "sending", "sent", "failed"]), help="Only this state.")
@click.option("--deal", "deal_number", help="Only this deal's mail.")
@click.option("--json", "as_json", is_flag=True, help="Print the mail as JSON.")
@click.pass_context
def outbox(ctx: click.Context, status: str | None, deal_number: str | None, as_json: bool) -> None:
    """The mail outbox: pending (and for how long), sending, sent, failed, and mail whose fate is
    unknown (the sender stopped while the mail server was taking it: check whether it arrived)."""
    if ctx.invoked_subcommand:
        return
    from sqlalchemy import select

    from models import Email
    from models.deal import deal_by_number
    from models.outbox import outbox_health, waited
    from services.db import session_scope
    from services.mailer import stuck

    now = utcnow()
    with session_scope() as s:
        q = select(Email).order_by(Email.id)
        if status:
            q = q.where(Email.status == status)
        if deal_number:
            q = q.where(Email.deal_id == deal_by_number(s, deal_number).id)
        stuck_ids = {m.id for m in stuck(s)}
        rows = [{"id": m.id, "kind": m.kind, "to": m.to_addr, "subject": m.subject,
                 "status": "sending (fate unknown)" if m.id in stuck_ids else m.status, "attempts": m.attempts,
                 "waiting": waited(int((now - m.created_at).total_seconds())) if m.status == "pending" else None,
                 "sent_at": m.sent_at.isoformat(timespec="seconds") if m.sent_at else None,
                 "message_id": m.message_id, "error": m.last_error or None} for m in s.scalars(q)]
        health = outbox_health(s, now)
    text = _table(rows, ["id", "kind", "to", "status", "attempts", "waiting", "sent_at", "error"])
    if health["pending"]:
        text += (f"\n{health['pending']} pending; the oldest (email {health['oldest_pending_id']}) has waited "
                 f"{waited(health['oldest_pending_seconds'])}")
    if health["fate_unknown"]:
        text += (f"\n{health['fate_unknown']} of unknown fate: the sender stopped while the mail server was "
                 f"taking it; check with the recipient, then `dealflow outbox confirm ID --by YOU` if it "
                 f"arrived, or `dealflow outbox retry ID --force` if it never came")
    _emit(rows, as_json, text)


@outbox.command("send")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def outbox_send(as_json: bool) -> None:
    """Send all pending mail now (what the scheduled `outbox` run does), after releasing the
    claims of senders that stopped before handing their message over."""
    from models.outbox import outbox_health, waited
    from services.config import load_settings, with_smtp_password
    from services.db import session_scope
    from services.mailer import TransientMailError, deliver

    settings = with_smtp_password(load_settings())
    with session_scope() as s:
        error = None
        try:
            sent = deliver(s, settings=settings)
        except TransientMailError as exc:
            sent, error = exc.sent, str(exc)
        health = outbox_health(s)
    out = {"sent": sent, "pending": health["pending"], "oldest_pending_seconds": health["oldest_pending_seconds"],
           "error": error}
    _emit(out, as_json, f"{len(sent)} sent; {health['pending']} pending"
          + (f" (the oldest has waited {waited(health['oldest_pending_seconds'])})" if health["pending"] else ""))
    if error:
        raise DomainError(f"smtp: {error}; the rest stays pending")


@outbox.command("confirm")
@click.argument("email_id", type=RECORD_ID)
@click.option("--by", required=True, help="Your staff handle (who checked).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def outbox_confirm(email_id: int, by: str, as_json: bool) -> None:
    """Record that an email of unknown fate did arrive (you asked the recipient, or found it in the
    mail server's log): it is marked sent. If it never arrived, use `outbox retry ID --force`."""
    from models import Email, NotFound, audit
    from models.outbox import confirm_arrived
    from models.process import staff_by_handle
    from services.company import sender as company_sender
    from services.db import session_scope
    from services.mailer import message_id

    with session_scope() as s:
        person = staff_by_handle(s, by)
        mail = s.get(Email, email_id)
        if mail is None:
            raise NotFound("email", email_id)
        confirm_arrived(mail, message_id(mail, company_sender()[1]))
        audit.record(s, person.handle, "email.confirmed_arrived", deal_id=mail.deal_id, subject=f"email {mail.id}",
                     to=mail.to_addr, kind=mail.kind)
        s.commit()
        out = {"id": email_id, "status": mail.status, "message_id": mail.message_id}
    _emit(out, as_json, f"email {email_id}: sent (confirmed by {by})")


@outbox.command("retry")
@click.argument("email_id", type=RECORD_ID)
@click.option("--force", is_flag=True,
              help="Also retry a message stuck in 'sending' (its first attempt may have arrived: "
                   "the customer could get it twice).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def outbox_retry(email_id: int, force: bool, as_json: bool) -> None:
    """Send a failed (or, with --force, stuck) message again, now."""
    from models import Email, NotFound
    from models.outbox import requeue
    from services.config import load_settings, with_smtp_password
    from services.db import session_scope
    from services.mailer import TransientMailError, deliver, sender_alive

    settings = with_smtp_password(load_settings())  # before anything changes: a missing secret stops here
    with session_scope() as s:
        mail = s.get(Email, email_id)
        if mail is None:
            raise NotFound("email", email_id)
        requeue(s, mail, force=force, is_alive=sender_alive)
        s.commit()
        try:
            deliver(s, email_ids=[email_id], settings=settings)
        except TransientMailError as exc:
            raise DomainError(f"smtp: {exc}; it stays pending and goes out with the next outbox run") from None
        mail = s.get(Email, email_id)
        out = {"id": email_id, "status": mail.status, "error": mail.last_error or None}
    _emit(out, as_json, f"email {email_id}: {out['status']}" + (f" ({out['error']})" if out["error"] else ""))


REPORT_NAMES = ("pipeline", "funnel", "stage-times", "sales", "stock", "aging")


@main.command()
@click.argument("name", type=click.Choice(REPORT_NAMES))
@click.option("--csv", "csv_path", type=FilePath(dir_okay=False, path_type=Path), help="Also write a CSV file.")
@click.option("--xlsx", "xlsx_path", type=FilePath(dir_okay=False, path_type=Path), help="Also write an Excel file.")
@click.option("--png", "png_path", type=FilePath(dir_okay=False, path_type=Path),
              help="Also draw a chart (funnel, pipeline, aging).")
@click.option("--as-of", help="Report as of this time (ISO, UTC) where time matters (aging, stage-times).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def report(name: str, csv_path: Path | None, xlsx_path: Path | None, png_path: Path | None, as_of: str | None,
           as_json: bool) -> None:
    """A report for the sales manager: pipeline (weighted forecast), funnel, stage-times (where deals
    get stuck), sales (by product and month), stock, aging (receivables)."""
    from services import reports
    from services.db import session_scope

    when = _as_of(as_of)
    if png_path and name not in reports.CHARTS:
        raise DomainError(f"png: charts exist for {', '.join(reports.CHARTS)}")
    with session_scope() as s:
        df = reports.build(s, name, when)
    written = []
    writers = [("csv", csv_path, lambda p: df.to_csv(p, index=False)),
               ("xlsx", xlsx_path, lambda p: df.to_excel(p, index=False, sheet_name=name)),
               ("png", png_path, lambda p: reports.chart(name, df, p))]
    for option, path, write in writers:
        if path is None:
            continue
        try:
            write(path)
        except OSError as exc:
            raise DomainError(f"{option}: cannot write {path} ({exc.strerror or exc})") from None
        written.append(str(path))
    if as_json:
        click.echo(json.dumps(reports.records(df), indent=2, default=str))
    else:
        click.echo(df.to_string(index=False, na_rep="") if not df.empty else "(no data)")
    for column in ("net_company", "amount_due_company"):
        if column in df and not df.empty and (df["currency"] != df["company_currency"]).any():
            click.echo("note: " + reports.CONVERTED_NOTE.format(column=column, currency=df["company_currency"].iloc[0]),
                       err=True)
    for path in written:
        click.echo(f"wrote {path}", err=True)


@main.command()
@click.option("--as-of", help="Run as if it were this time (ISO, UTC); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print what was queued as JSON.")
def remind(as_of: str | None, as_json: bool) -> None:
    """Run the reminder rules now (what the scheduled `reminders` deployment does)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    when = _as_of(as_of)
    ensure_api()
    from flows.reminders import reminders_flow

    queued = reminders_flow(as_of=when.isoformat(timespec="seconds") if when else None)
    _emit(queued, as_json, _table(queued, ["rule", "about", "to", "subject"]))


if __name__ == "__main__":  # `python -m dealflow.cli`: the command as its package's module has it
    from dealflow.cli import main as the_command

    the_command()
else:
    from .catalog_cli import customer, price, product, rate, stock  # they build on the helpers above

    main.add_command(customer)
    main.add_command(product)
    main.add_command(price)
    main.add_command(rate)
    main.add_command(stock)
