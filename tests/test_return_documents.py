"""What the customer reads of a credit note on its page in the portal: a signed personal link opens
the credit note as it was sent, with what became of its money. (A return's documents and emails
follow with the returns themselves.)"""

from __future__ import annotations

import re

from sqlalchemy import select

from dealflow.customer import PortalCustomer
from dealflow.scenario import play_direct
from models import StaffUser
from models.deal import deal_by_number
from services.db import session_scope


def _text(html: str) -> str:
    return " ".join(re.sub(r"<style>.*?</style>|<[^>]+>", " ", html, flags=re.S).split())


def _staff(s, handle: str) -> StaffUser:
    return s.scalars(select(StaffUser).where(StaffUser.handle == handle)).one()


def test_a_cancels_credit_note_opens_on_its_page_as_it_reads_today(new_deal, portal):
    """The page reads any credit note a link names: a cancel's shows the invoice it reverses."""
    from models.cancellation import cancel_deal
    from models.portal import credit_note_link
    from services.links import url_for

    play_direct(new_deal, until="shipment-1")  # the 30 % deposit is paid, nothing shipped
    with session_scope() as s:
        cancel_deal(s, deal_by_number(s, new_deal), _staff(s, "manager"), "Plant <i>postponed</i>", "refund")
        s.commit()
        note = deal_by_number(s, new_deal).credit_notes[0]
        link = url_for(credit_note_link(note, note.deal.customer.primary_contact.email))
    with PortalCustomer() as customer:
        page = customer.open(link)
    text = _text(page.text)
    assert page.status_code == 200
    for piece in ["Credit note CN-0001", "Deposit invoice DEP-0001 is cancelled in full: nothing is due on it.",
                  "Refunded to you: USD 52,255.10 by bank transfer (refund RFD-0001), quoting CN-0001.",
                  "Reason: Plant &lt;i&gt;postponed&lt;/i&gt;.", "Credited USD 52,255.10"]:
        assert piece in text, (piece, text)
    assert "<i>postponed</i>" not in page.text and "Return RMA" not in text
