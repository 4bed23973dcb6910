"""Money that comes in when it comes in: finance records a payment against any open invoice, a
deposit invoice or a final one, by its number, whether or not the deal's flow has reached the
step that waits for it (a deposit paid the day after the order, while QA still tests the machine).
The flow then finds the invoice paid (or part paid) and waits only for what is left. A deal that
stands at that very wait is answered there instead (``dealflow answer``), so that the run waiting
for the answer is the one that gets it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import DomainError, audit
from models.billing import Invoice
from models.errors import NotFound, ValidationError
from models.roles import Role
from models.states import WaitStatus
from models.text import shown
from models.waits.payment import record
from services import mailer

from .deals import deliver_mail, locked_deal
from .uow import unit_of_work

ACTION = "record a payment"


def payment_payload(by: str, amount: str, method: str, reference: str, received_on: str | None) -> dict[str, Any]:
    """What a finance person's session signs for ``invoice pay`` (with the invoice's number as typed)."""
    return {"by": by, "amount": amount, "method": method, "reference": reference, "received_on": received_on or ""}


def record_payment(invoice_number: str, by: str, amount: str, *, method: str = "bank_transfer", reference: str = "",
                   received_on: str | None = None, proof: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record a payment received against the invoice ``invoice_number`` (finance's step, proven as
    a manager's cancel is: ``application.staff.acting_person``), with its receipt to the customer;
    refused, with nothing written, over what is due, on a settled invoice, or when the deal waits
    for this very payment (answer that wait instead). Returns the payment and the invoice's balance."""
    from models.waits import read_answer

    from .staff import acting_person

    number = str(invoice_number or "").strip().upper()
    payload = payment_payload(by, amount, method, reference, received_on)
    with unit_of_work() as s:
        invoice = s.scalars(select(Invoice).where(Invoice.number == number)).one_or_none()
        if invoice is None:
            raise NotFound("invoice", shown(invoice_number, 40))
        deal = locked_deal(s, invoice.deal.number)  # one after the other with the deal's own steps
        person, proven = acting_person(s, by, Role.FINANCE, proof or {}, subject=number, action="pay", what=ACTION,
                                       payload=payload)
        wait = deal.open_wait
        step = "deposit" if invoice.is_deposit else "payment"
        if wait is not None and wait.status == WaitStatus.OPEN and wait.step == step:
            raise DomainError(f"invoice: {deal.number} waits for this payment at {wait.key}: answer it there "
                              f"(`dealflow answer {deal.number} {step} --set amount=…`, or the run's page)")
        if not deal.is_open:
            raise ValidationError("invoice", f"{number} is of {deal.number}, which is {deal.status}")
        answer = read_answer(step, {"amount": amount, "method": method, "reference": reference,
                                    "received_on": received_on})
        outcome = record(s, deal, invoice, person, answer)
        audit.record(s, person.handle, "payment.recorded", deal_id=deal.id, subject=number, outcome=outcome,
                     proof=proven, door="command line")
        out = {"invoice": number, "deal": deal.number, "kind": invoice.kind, "outcome": outcome,
               "paid": str(invoice.paid), "due": str(invoice.amount_due), "status": invoice.status,
               "currency": deal.currency, "by": person.handle}
    out["mail_sent"], out["mail_left"] = [], None
    try:
        out["mail_sent"] = deliver_mail(out["deal"])
    except mailer.TransientMailError as exc:  # the receipt waits in the outbox; the payment is recorded
        out["mail_sent"], out["mail_left"] = exc.sent, str(exc)[:300]
    return out
