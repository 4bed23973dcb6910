"""Reminder rules: who is reminded of what, when, and the record that makes each reminder go out
at most once per rule, entity, recipient and day, also when runs are retried or overlap.

    followup-digest  follow-ups due today or overdue       -> their owner, one digest a day
    estimate         estimate sent, unanswered N days      -> the customer, every N days, at most K times
    qa-pending       order awaiting QA for N days          -> the QA team
    unshipped        released, not all shipped after N days -> delivery
    dunning-<n>      invoice unpaid n-th step after due     -> the customer, a letter per step
    stuck-wait       deal waiting at a human step N days    -> its owner and the sales manager
    mail-waiting     outbox mail pending over N minutes, of
                     unknown fate, or failed                -> the sales managers, one digest a day

Every scan is one set-based query on indexed columns; what was already sent is excluded in SQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from .base import Base, utcnow
from .billing import Invoice
from .crm import FollowUp
from .deal import Deal, Wait
from .documents import dunning_context, estimate_reminder_context
from .errors import ValidationError
from .estimates import EstimateRevision
from .orders import PickRelease, SalesOrder
from .outbox import add_document, queue_email
from .portal import estimate_link
from .staff import Role, StaffUser


class ReminderSent(Base):
    __tablename__ = "reminders_sent"
    __table_args__ = (UniqueConstraint("rule", "entity_id", "recipient", "day"),
                      Index("ix_reminders_sent_rule_entity", "rule", "entity_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[int]
    recipient: Mapped[str] = mapped_column(String(200))
    day: Mapped[date] = mapped_column(Date)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"))
    email_id: Mapped[int | None] = mapped_column(ForeignKey("emails.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

@dataclass(frozen=True)
class ReminderRules:
    estimate_unanswered_days: int = 7
    estimate_max_reminders: int = 2
    qa_pending_days: int = 3
    unshipped_days: int = 5
    dunning_days: tuple[int, ...] = (1, 7, 14, 30)
    stuck_wait_days: int = 5
    mail_waiting_minutes: int = 60

    def __post_init__(self) -> None:
        for name in ("estimate_unanswered_days", "estimate_max_reminders", "qa_pending_days",
                     "unshipped_days", "stuck_wait_days", "mail_waiting_minutes"):
            if getattr(self, name) < 1:
                raise ValidationError(name, "must be at least 1")
        steps = list(self.dunning_days)
        if not steps or steps != sorted(set(steps)) or steps[0] < 1:
            raise ValidationError("dunning_days", "must be increasing whole days after the due date, e.g. 1,7,14,30")

@dataclass
class Reminder:
    """One reminder to send: the rule, what it is about, to whom, and the email."""
    rule: str
    entity_id: int
    recipient: str
    day: date
    subject: str
    template: str
    context: dict[str, Any]
    deal_id: int | None = None
    document: tuple[str, str, str] | None = None  # kind, number, template
    about: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

def _sent(rule: str, entity_col, day: date | None = None):
    """Correlated NOT EXISTS: no reminder of ``rule`` for this entity (on ``day``) yet."""
    cond = [ReminderSent.rule == rule, ReminderSent.entity_id == entity_col]
    if day is not None:
        cond.append(ReminderSent.day == day)
    return ~select(ReminderSent.id).where(*cond).exists()

def _staff_with(session: Session, role: Role) -> list[StaffUser]:
    return [p for p in session.scalars(select(StaffUser).where(StaffUser.active).order_by(StaffUser.id))
            if p.holds(role)]

def followup_digests(session: Session, now: datetime) -> Iterator[Reminder]:
    today = now.date()
    end_of_today = datetime.combine(today + timedelta(days=1), time())
    rows = session.execute(
        select(FollowUp.id, FollowUp.kind, FollowUp.due_at, FollowUp.notes, FollowUp.owner_id, Deal.number)
        .join(Deal, Deal.opportunity_id == FollowUp.opportunity_id)
        .where(FollowUp.done_at.is_(None), FollowUp.due_at < end_of_today, Deal.status == "open",
               _sent("followup-digest", FollowUp.owner_id, today))
        .order_by(FollowUp.owner_id, FollowUp.due_at)).all()
    by_owner: dict[int, list] = {}
    for row in rows:
        by_owner.setdefault(row.owner_id, []).append(row)
    for owner_id, items in by_owner.items():
        owner = session.get(StaffUser, owner_id)
        lines = [f"{r.due_at:%Y-%m-%d %H:%M} {'OVERDUE ' if r.due_at < now else ''}{r.kind} on {r.number}: "
                 f"{r.notes or '-'} (follow-up {r.id})" for r in items]
        overdue = sum(1 for r in items if r.due_at < now)
        yield Reminder("followup-digest", owner_id, owner.email, today,
                       f"{len(items)} follow-ups due today ({overdue} overdue)", "emails/staff_reminder",
                       {"name": owner.name, "title": "Your follow-ups due today and overdue", "lines": lines,
                        "number": f"followups-{today}"}, about=f"{len(items)} follow-ups")

def estimate_reminders(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    today = now.date()
    cutoff = now - timedelta(days=rules.estimate_unanswered_days)
    done = (select(ReminderSent.entity_id, func.count().label("n"), func.max(ReminderSent.day).label("last"))
            .where(ReminderSent.rule == "estimate").group_by(ReminderSent.entity_id).subquery())
    revs = session.scalars(
        select(EstimateRevision).join(EstimateRevision.estimate).join(Deal)
        .outerjoin(done, done.c.entity_id == EstimateRevision.id)
        .where(EstimateRevision.status == "sent", EstimateRevision.sent_at <= cutoff, Deal.status == "open",
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

def qa_pending(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    today = now.date()
    # counted from when the current QA wait opened (after a failed attempt: from the rework)
    rows = session.execute(select(SalesOrder, Wait.opened_at).join(Wait, (Wait.deal_id == SalesOrder.deal_id)
                                                                 & (Wait.step == "qa") & (Wait.status == "open"))
                           .where(SalesOrder.status == "awaiting_qa",
                                  Wait.opened_at <= now - timedelta(days=rules.qa_pending_days),
                                  _sent("qa-pending", SalesOrder.id, today))).all()
    for order, since in rows:
        days = (now - since).days
        for person in _staff_with(session, Role.QA):
            yield Reminder("qa-pending", order.id, person.email, today,
                           f"QA pending {days} days: {order.number} ({order.deal.customer_name})",
                           "emails/staff_reminder",
                           {"name": person.name, "title": f"Order {order.number} is waiting for QA sign-off",
                            "lines": [f"{ln.quantity} × {ln.sku}" for ln in order.lines]
                            + [f"waiting since {since:%Y-%m-%d} ({days} days), "
                               f"{len(order.inspections)} inspections so far"],
                            "number": order.number}, deal_id=order.deal_id, about=order.number)

def unshipped(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    today = now.date()
    orders = session.scalars(select(SalesOrder).join(PickRelease).where(
        SalesOrder.status.in_(("released", "partially_shipped")),
        PickRelease.at <= now - timedelta(days=rules.unshipped_days),
        _sent("unshipped", SalesOrder.id, today))).all()
    for order in orders:
        days = (now - order.pick_release.at).days
        left = [f"{ln.remaining} × {ln.sku} still to ship" for ln in order.lines if ln.remaining]
        for person in _staff_with(session, Role.DELIVERY):
            yield Reminder("unshipped", order.id, person.email, today,
                           f"Released {days} days ago, not shipped: {order.number} ({order.deal.customer_name})",
                           "emails/staff_reminder",
                           {"name": person.name, "title": f"Order {order.number} was released {days} days ago",
                            "lines": left, "number": order.number}, deal_id=order.deal_id, about=order.number)

def dunning(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    """The letter of the highest step reached, once per step (keyed by the day the step fell on,
    so a run that missed that day still sends it once, and later runs never again)."""
    today = now.date()
    first = today - timedelta(days=rules.dunning_days[0])
    invoices = session.scalars(select(Invoice).join(Deal).where(
        Invoice.status != "paid", Invoice.due_date <= first)).all()
    for invoice in invoices:
        level = sum(1 for d in rules.dunning_days if today >= invoice.due_date + timedelta(days=d))
        step_day = invoice.due_date + timedelta(days=rules.dunning_days[level - 1])
        rule = f"dunning-{level}"
        if session.scalar(select(func.count()).select_from(ReminderSent).where(
                ReminderSent.rule == rule, ReminderSent.entity_id == invoice.id)):
            continue
        ctx = dunning_context(invoice, level, today)
        yield Reminder(rule, invoice.id, ctx["customer"]["email"], step_day,
                       f"{ctx['title']}: invoice {invoice.number}, {invoice.deal.currency} {invoice.amount_due} due",
                       "emails/dunning", ctx, deal_id=invoice.deal_id,
                       document=("dunning", ctx["number"], "documents/dunning.html"),
                       about=f"{invoice.number} level {level}")

def stuck_waits(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    today = now.date()
    owner = aliased(StaffUser)
    rows = session.execute(select(Wait, Deal, owner).join(Deal, Wait.deal_id == Deal.id)
                           .join(owner, Deal.owner_id == owner.id)
                           .where(Wait.status == "open", Wait.opened_at <= now - timedelta(days=rules.stuck_wait_days),
                                  Deal.status == "open", _sent("stuck-wait", Wait.id, today))).all()
    managers = _staff_with(session, Role.MANAGER)
    for wait, deal, rep in rows:
        days = (now - wait.opened_at).days
        for person in [rep, *managers]:
            yield Reminder("stuck-wait", wait.id, person.email, today,
                           f"{deal.number} ({deal.customer_name}) has waited {days} days for {wait.step}",
                           "emails/staff_reminder",
                           {"name": person.name, "title": f"{deal.number} is stuck at {wait.step}",
                            "lines": [f"waiting since {wait.opened_at:%Y-%m-%d} ({days} days) for "
                                      f"{wait.roles.replace(',', ' or ')}: {wait.key}"],
                            "number": deal.number}, deal_id=deal.id, about=f"{deal.number} {wait.key}")

OUTBOX_ENTITY = 0  # the outbox as a whole: one digest a day, not one per email


def mail_waiting(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    """Mail that has not gone out: pending longer than the rule allows (the mail server is down or
    refuses it for now), handed over with its fate unknown, or failed for good. Once a day, to the
    sales managers. (While the mail server is down this digest waits in the outbox too; the
    reminders run's table and the outbox run's state show it in the Prefect UI meanwhile.)"""
    from .outbox import Email, waited

    today = now.date()
    if session.scalar(select(func.count()).select_from(ReminderSent).where(
            ReminderSent.rule == "mail-waiting", ReminderSent.day == today)):
        return
    cutoff = now - timedelta(minutes=rules.mail_waiting_minutes)
    late = session.scalars(select(Email).where(
        ((Email.status == "pending") & (Email.created_at <= cutoff))
        | ((Email.status == "sending") & Email.handed_at.is_not(None)) | (Email.status == "failed"))
        .order_by(Email.created_at)).all()
    if not late:
        return
    pending = [m for m in late if m.status == "pending"]
    lines = []
    if pending:
        lines.append(f"{len(pending)} pending for over {waited(rules.mail_waiting_minutes * 60)}; the oldest "
                     f"(email {pending[0].id}, {pending[0].subject}) has waited "
                     f"{waited(int((now - pending[0].created_at).total_seconds()))}: is the mail server reachable?")
    unknown = [m for m in late if m.status == "sending"]
    if unknown:
        lines.append(f"{len(unknown)} of unknown fate (emails {', '.join(str(m.id) for m in unknown[:20])}): "
                     f"ask whether they arrived, then `dealflow outbox confirm ID --by HANDLE` if they did, "
                     f"`dealflow outbox retry ID --force` if not")
    failed = [m for m in late if m.status == "failed"]
    if failed:
        lines.append(f"{len(failed)} failed for good (emails {', '.join(str(m.id) for m in failed[:20])}): "
                     f"see `dealflow outbox --status failed`")
    for person in _staff_with(session, Role.MANAGER):
        yield Reminder("mail-waiting", OUTBOX_ENTITY, person.email, today,
                       f"Mail waiting in the outbox: {len(late)} emails", "emails/staff_reminder",
                       {"name": person.name, "title": "Mail that has not gone out", "lines": lines,
                        "number": f"outbox-{today}"}, about=f"{len(late)} emails in the outbox")


RULES = ("followup-digest", "estimate", "qa-pending", "unshipped", "dunning", "stuck-wait", "mail-waiting")


def due_reminders(session: Session, now: datetime, rules: ReminderRules) -> list[Reminder]:
    return [*followup_digests(session, now), *estimate_reminders(session, now, rules),
            *qa_pending(session, now, rules), *unshipped(session, now, rules), *dunning(session, now, rules),
            *stuck_waits(session, now, rules), *mail_waiting(session, now, rules)]

def record(session: Session, reminder: Reminder) -> int | None:
    """Write the reminder's record and its outbox email in a savepoint; None if another run
    (or an earlier try of this one) already sent it."""
    try:
        with session.begin_nested():
            doc = None
            if reminder.document:
                kind, number, template = reminder.document
                doc = add_document(session, reminder.deal_id, kind, number, template, reminder.context)
            mail = queue_email(session, deal_id=reminder.deal_id,
                               dedupe_key=f"reminder:{reminder.rule}:{reminder.entity_id}:{reminder.day}:"
                                          f"{hashlib.sha256(reminder.recipient.encode()).hexdigest()[:16]}",
                               kind=reminder.template.rsplit("/", 1)[-1],
                               to_addr=reminder.recipient, subject=reminder.subject, template=reminder.template,
                               context=reminder.context, document=doc)
            session.add(ReminderSent(rule=reminder.rule, entity_id=reminder.entity_id, recipient=reminder.recipient,
                                     day=reminder.day, deal_id=reminder.deal_id, email_id=mail.id))
            session.flush()
            return mail.id
    except IntegrityError:
        return None

