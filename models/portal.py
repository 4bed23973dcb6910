"""The customer's side of the portal, in two rooms:

- ``models.customer_links``: the signed links in the estimate, invoice and credit note emails
  (``Link``, ``link_token``, ``read_link``, ``estimate_link``, ``invoice_link``,
  ``credit_note_link``), a colleague's dated link to a document, what a link opens
  (``estimate_state``, ``linked_invoice``, ``linked_credit_note``) and the wait for the
  customer's decision (``decision_key``, ``decision_wait``);
- ``models.customer_answers``: what the customer answers (``CustomerAnswer``, ``check_typed``,
  ``run_input``, ``prove_customer``, ``record_customer_answer``) or asks for (``ask_for_renewal``).

This module gathers their names for the importers that have always used them.
"""

from __future__ import annotations

from .customer_answers import (
    ACTIONS,
    ANSWER_SALT,
    BY_LINK,
    DONE,
    MAX_CHANGES,
    MAX_NAME,
    MAX_PO,
    MAX_REASON,
    RENEWAL,
    CustomerAnswer,
    Signed,
    answered_by_customer,
    as_answered,
    ask_for_renewal,
    check_typed,
    customer_actor,
    describe_decision,
    last_refusal,
    prove_customer,
    record_customer_answer,
    renewal_asked,
    run_input,
)
from .customer_links import (
    CREDIT_NOTE_LINK_DAYS,
    DOCUMENT_LINK_DAYS,
    DOCUMENT_SALT,
    INVOICE_LINK_DAYS,
    LINK_SALT,
    EstimateState,
    Link,
    contact_for,
    credit_note_link,
    decision_key,
    decision_wait,
    document_token,
    estimate_link,
    estimate_state,
    invoice_link,
    is_decision_on,
    link_token,
    linked_credit_note,
    linked_invoice,
    read_document_token,
    read_link,
    serializer,
)

_serializer = serializer  # the name tests/test_portal.py reads a signed answer with

__all__ = [
    "ACTIONS", "ANSWER_SALT", "BY_LINK", "CREDIT_NOTE_LINK_DAYS", "DOCUMENT_LINK_DAYS", "DOCUMENT_SALT",
    "DONE", "INVOICE_LINK_DAYS", "LINK_SALT", "MAX_CHANGES", "MAX_NAME", "MAX_PO", "MAX_REASON", "RENEWAL",
    "CustomerAnswer", "EstimateState", "Link", "Signed", "answered_by_customer", "as_answered",
    "ask_for_renewal", "check_typed", "contact_for", "credit_note_link", "customer_actor", "decision_key",
    "decision_wait", "describe_decision", "document_token", "estimate_link", "estimate_state", "invoice_link",
    "is_decision_on", "last_refusal", "link_token", "linked_credit_note", "linked_invoice", "prove_customer",
    "read_document_token", "read_link", "record_customer_answer", "renewal_asked", "run_input", "serializer",
]
