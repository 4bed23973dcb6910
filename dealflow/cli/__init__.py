"""The ``dealflow`` command. A user's mistake is one line on stderr and exit code 2.

One module per command group, each adding its commands to ``main`` below; what the groups share
(output, one-line errors, who runs a command) is in ``common``, answering a wait in ``answering``.
"""

from __future__ import annotations

import click

from . import cancel as _cancel  # noqa: F401 - adds `deal cancel` to the deal group
from . import (
    cases,
    catalog,
    customers,
    deals,
    leads,
    outbox,
    payments,
    prices,
    reports,
    running,
    serials,
    setup,
    staff,
    waits,
)
from .common import DealflowGroup

__all__ = ["main"]


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
    from ..api_credential import use_running_server

    if ctx.invoked_subcommand not in ("demo", "up", "down"):  # the demo plays in a folder and on a server of its own
        use_running_server()  # before Prefect is imported: it reads its settings once


# in the order they were written (`--help` lists them alphabetically)
for command in (setup.init, setup.company, setup.demo, leads.lead, deals.deal, deals.followup, deals.opportunity,
                staff.staff, staff.login, staff.logout, running.up, running.executor, running.portal, running.gateway,
                running.down, waits.inbox, waits.answer, outbox.outbox, reports.report, reports.remind,
                customers.customer, catalog.product, prices.price, prices.rate, catalog.stock, payments.invoice,
                serials.serial,
                cases.return_group, cases.warranty):
    main.add_command(command)
