"""``dealflow invoice pay``: finance records a payment against an invoice (a deposit invoice or a
final one) when it comes in, whatever step the deal stands at; proven as an answer is (a one-time
code, or the session of ``dealflow login``)."""

from __future__ import annotations

import click

from .common import DealflowGroup, acting, emit


@click.group(cls=DealflowGroup)
def invoice() -> None:
    """Invoices: record a payment received (`invoice pay`)."""


@invoice.command("pay")
@click.argument("number", metavar="INVOICE")
@click.option("--amount", required=True, help="The amount received, at most what is still due.")
@click.option("--method", default="bank_transfer", show_default=True,
              help="bank_transfer, card, cheque, cash, or 'credit on account' (the customer's credit).")
@click.option("--reference", default="", help="The bank's reference or the cheque's number.")
@click.option("--received-on", "received_on", help="The day the money came in (YYYY-MM-DD; default today).")
@click.option("--by", help="Your staff handle (finance, or a manager; the session's, when you logged in).")
@click.option("--code", metavar="NNNNNN", help="Your one-time code, without `dealflow login`.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def invoice_pay(number: str, amount: str, method: str, reference: str, received_on: str | None, by: str | None,
                code: str | None, as_json: bool) -> None:
    """Record a payment received against INVOICE (DEP-0001 or INV-0001) when it comes in: a deposit
    paid while QA still tests the machine is on the record at once, and the deal then waits only
    for what is left, if anything. A deal standing at the wait for this very payment is answered
    there (`dealflow answer DEAL deposit|payment`). The customer gets the payment's receipt."""
    from application.payments import payment_payload, record_payment

    number = number.strip().upper()  # as the invoice is looked up, and as the session signs it
    by, proof = acting("invoice pay", by, code, number, "pay",
                       lambda who: payment_payload(who, amount, method, reference, received_on), "finance")
    out = record_payment(number, by, amount, method=method, reference=reference, received_on=received_on,
                         proof=proof)
    said = f"{out['invoice']} ({out['deal']}): {out['outcome']}; {out['status'].replace('_', ' ')}"
    said += f"\n  mail: {len(out['mail_sent'])} sent" if out["mail_sent"] else ""
    if out["mail_left"]:
        said += f"\n  mail: the receipt waits in the outbox ({out['mail_left']})"
    emit(out, as_json, said)
