"""The customer's decision on the estimate sent: approve (it becomes an order), ask for changes
(a new revision follows) or decline (the deal is lost). The customer answers online from the
estimate email's link, or tells sales, who record it; the first answer wins."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import audit
from ..catalog import shortages
from ..credit import check_credit
from ..deal import Deal
from ..documents import estimate_reminder_context, revision_changes
from ..errors import ValidationError
from ..estimates import CHANNEL_WORDS, DECISION_CHANNELS, DECISION_WORDS, EstimateRevision
from ..markdown import Markdown
from ..portal import MAX_PO, decision_key, estimate_link
from ..prompts import lines_table, money
from ..reminders import Reminder, ReminderRule, ReminderRules, ReminderSent
from ..sending import SYSTEM
from ..staff import Role, StaffUser
from ..states import DealStatus, RevisionStatus
from ..typed import line_of, notes_of
from .estimate import engineer
from .forms import Fields, words_only
from .kind import WaitKind


class DecisionFields(Fields):
    """Record the customer's decision on the estimate (on the customer's behalf)."""
    decision: Literal[(*DECISION_WORDS, "request_changes")] = Field(  # type: ignore[valid-type]
        title="Customer's decision",
        description="approve: it becomes an order; ask for changes: a new revision follows; decline: the deal is "
                    "lost.")
    channel: Literal[(*CHANNEL_WORDS, *DECISION_CHANNELS)] = Field(  # type: ignore[valid-type]
        title="How the customer told us", default="email",
        description="By email, phone, a signed document or in a meeting (an answer online from the estimate's "
                    "link is the customer's own).")
    changes: str = Field(title="Changes wanted", default="",
                         description="When they ask for changes: what the customer wants changed.")
    reason: str = Field(title="Reason for declining", default="", description="When they decline: why.")
    po_number: str = Field(title="Customer's PO number", default="",
                           description="When they approve: the customer's purchase-order number, if they gave one "
                                       "(it goes on the order, invoice and delivery note).")
    note: str = Field(title="Note", default="", description="Anything else worth keeping.")

    words: ClassVar[dict[str, dict[str, str]]] = {"decision": DECISION_WORDS, "channel": CHANNEL_WORDS}

    @classmethod
    def fit_schema(cls, schema: dict) -> None:
        super().fit_schema(schema)
        words_only(schema, "channel", {**CHANNEL_WORDS, "portal": "portal"})  # portal: the customer's own answer


def at(deal: Deal) -> dict[str, Any] | None:
    latest = deal.estimate.latest
    return {"revision": latest.revision} if latest.status == RevisionStatus.SENT else None


def describe(session: Session, deal: Deal) -> Markdown:
    rev = deal.estimate.latest
    previous = deal.estimate.sent_before(rev)
    changes = revision_changes(previous, rev)
    t = rev.totals
    text = Markdown("record the customer's decision on {} (valid until {}), given by phone, email or in a "
                    "meeting: they approve it, ask for changes (say which) or decline it (say why), and how they "
                    "told us. The customer can also answer online from the link in the estimate email; the first "
                    "answer wins.\n\n{}\n\nNet {}, tax {}, **total {}**.").format(
        rev.number, rev.valid_until, lines_table(rev.lines, deal.currency), money(t.net, deal.currency),
        money(t.tax, deal.currency), money(t.total, deal.currency))
    if changes:
        text += Markdown("\n\nChanged since the previous revision: ") + Markdown("; ").join(changes) + Markdown(".")
    short = shortages(session, [(ln.product, ln.quantity) for ln in rev.lines])
    if short:
        text += (Markdown("\n\n**More than is available:** ") + Markdown("; ").join(Markdown("{}").format(n)
                                                                                  for n in short)
                 + Markdown(". The order can still be made; it ships when the stock is there."))
    return text


def answer(session: Session, deal: Deal, person: StaffUser, answer: dict[str, Any]) -> str:
    """A decision the customer told sales (by phone, email, a meeting): recorded by them."""
    decision = line_of(answer, "decision", 20, required=True)
    channel = line_of(answer, "channel", 20) or "email"
    if channel == "portal":
        raise ValidationError("channel", "portal is the customer's own answer from the estimate link; "
                                         "say how the customer told you (email, phone, signed_document, meeting)")
    text = notes_of(answer, "changes") if decision == "request_changes" else notes_of(answer, "reason", 2000)
    return decide(session, deal, decision, person.handle, channel, note=notes_of(answer, "note", 2000), text=text,
                  po=line_of(answer, "po_number", MAX_PO), mover=person)


def decide(session: Session, deal: Deal, decision: str, by: str, channel: str, *, note: str, text: str,
           mover: StaffUser, on: date | None = None, po: str = "") -> str:
    """The customer's decision on the revision that waits, whoever records it: the revision's
    state makes the first decision the only one. ``on``: the day the customer decided (an
    answer sent online before the validity ended counts, even if recorded a moment after)."""
    rev = deal.estimate.latest
    if decision == "approve":
        rev.approve(by, channel, note, on=on)
        rev.customer_po = po  # the customer's purchase-order number: on the order, invoice and delivery note
        hold = check_credit(session, deal, rev)  # the customer's credit, checked one acceptance at a time
        if hold is not None:  # not won yet: credit control releases it (won) or rejects it (lost)
            session.expire(deal, ["credit_holds"])
            audit.record(session, SYSTEM, "credit.held", deal_id=deal.id, subject=rev.number, why=hold.why)
            return f"{rev.number} approved; the order is on credit hold: {hold.why}"
        deal.opportunity.move_to("closed_won", mover)
        return f"{rev.number} approved"
    if decision == "request_changes":
        rev.request_changes(by, channel, text)
        if deal.opportunity.stage != "negotiation":
            deal.opportunity.move_to("negotiation", mover)
        return f"{rev.number}: changes requested"
    if decision == "decline":
        reason = text or "declined"
        rev.decline(by, channel, reason)
        deal.opportunity.move_to("closed_lost", mover)
        deal.close_lost(f"estimate declined: {reason}")
        return f"{rev.number} declined"
    raise ValidationError("decision", "must be approve, request_changes or decline")


def estimate_reminders(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    """The customer, when an estimate sent waits unanswered: every N days, at most K times."""
    today = now.date()
    cutoff = now - timedelta(days=rules.estimate_unanswered_days)
    done = (select(ReminderSent.entity_id, func.count().label("n"), func.max(ReminderSent.day).label("last"))
            .where(ReminderSent.rule == "estimate").group_by(ReminderSent.entity_id).subquery())
    revs = session.scalars(
        select(EstimateRevision).join(EstimateRevision.estimate).join(Deal)
        .outerjoin(done, done.c.entity_id == EstimateRevision.id)
        .where(EstimateRevision.status == RevisionStatus.SENT, EstimateRevision.sent_at <= cutoff, Deal.status == DealStatus.OPEN,
               func.coalesce(done.c.n, 0) < rules.estimate_max_reminders,
               (done.c.last.is_(None)) | (done.c.last <= cutoff.date()))).all()
    for rev in revs:
        n = 1 + session.scalar(select(func.count()).select_from(ReminderSent).where(
            ReminderSent.rule == "estimate", ReminderSent.entity_id == rev.id))
        ctx = estimate_reminder_context(rev, n, today)
        link = estimate_link(rev, ctx["customer"]["email"])  # the customer's page, signed when mailed
        if link is not None:
            ctx["portal_link"] = asdict(link)
        yield Reminder("estimate", rev.id, ctx["customer"]["email"], today,
                       f"Reminder: estimate {rev.number} for {ctx['customer']['name']}", "emails/estimate_reminder",
                       ctx, deal_id=rev.estimate.deal_id,
                       document=("estimate_reminder", ctx["number"], "documents/estimate_reminder.html"),
                       about=f"{rev.number}, reminder {n}")


DECISION = WaitKind(
    # recorded by sales on the customer's behalf (or by the customer online): the engineer follows it up
    name="decision", title="the customer's decision", roles=(Role.SALES_ENGINEER, Role.SALES_REP),
    waiting_for="customer", at=at, key=lambda facts: decision_key(facts["revision"]), assignee=engineer,
    fields=DecisionFields, describe=describe, answer=answer,
    reminder=ReminderRule("estimate", estimate_reminders))
