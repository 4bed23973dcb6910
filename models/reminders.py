"""Reminders: the record that makes each reminder go out at most once per rule, entity,
recipient and day, also when runs are retried or overlap, and the rules that belong to no one
wait kind:

    followup-digest  follow-ups due today or overdue       -> their owner, one digest a day
    stuck-wait       deal waiting at a human step N days    -> its owner and the sales manager
    mail-waiting     outbox mail pending over N minutes, of
                     unknown fate, or failed                -> the sales managers, one digest a day

A wait kind's own rule lives with its kind (``models.waits``: the customer's estimate reminder
with the decision, qa-pending with QA, unshipped with the shipment, dunning with the payment);
``models.waits.due_reminders`` runs them all.

Every scan is one set-based query on indexed columns; what was already sent is excluded in SQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from .base import Base, utcnow
from .crm import FollowUp
from .deal import CASE_STEP_PREFIXES, Deal, Wait
from .errors import ValidationError
from .outbox import add_document, queue_email
from .staff import Role, StaffUser
from .states import DealStatus, EmailStatus, WaitStatus


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
    discount_approval_hours: int = 4  # working hours (see ``models.clock.working_hours``)
    deposit_waiting_days: int = 3
    credit_hold_hours: int = 4  # working hours

    def __post_init__(self) -> None:
        for name in ("estimate_unanswered_days", "estimate_max_reminders", "qa_pending_days",
                     "unshipped_days", "stuck_wait_days", "mail_waiting_minutes", "discount_approval_hours"):
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

def not_sent_yet(rule: str, entity_col, day: date | None = None):
    """Correlated NOT EXISTS: no reminder of ``rule`` for this entity (on ``day``) yet."""
    cond = [ReminderSent.rule == rule, ReminderSent.entity_id == entity_col]
    if day is not None:
        cond.append(ReminderSent.day == day)
    return ~select(ReminderSent.id).where(*cond).exists()

def staff_with(session: Session, role: Role, *more: Role) -> list[StaffUser]:
    """The enabled people holding ``role`` (or any of ``more``), each once."""
    return [p for p in session.scalars(select(StaffUser).where(StaffUser.active).order_by(StaffUser.id))
            if any(p.holds(r) for r in (role, *more))]


def open_waits_at(session: Session, step: str, rule: str, today: date, *where: Any) -> list[tuple[Wait, Deal]]:
    """The open waits at ``step`` of open deals (and ``where``) that ``rule`` reminded no one of today."""
    return [(w, d) for w, d in session.execute(
        select(Wait, Deal).join(Deal, Wait.deal_id == Deal.id)
        .where(Wait.step == step, Wait.status == WaitStatus.OPEN, Deal.status == DealStatus.OPEN,
               not_sent_yet(rule, Wait.id, today), *where))]


def to_staff(rule: str, wait: Wait, deal: Deal, people: list[StaffUser], today: date, subject: str, title: str,
             lines: list[str]) -> Iterator[Reminder]:
    """A staff reminder of a wait (``emails/staff_reminder``) to each of ``people``."""
    for person in people:
        yield Reminder(rule, wait.id, person.email, today, subject, "emails/staff_reminder",
                       {"name": person.name, "title": title, "lines": lines, "number": deal.number},
                       deal_id=deal.id, about=f"{deal.number} {wait.key}")

def followup_digests(session: Session, now: datetime) -> Iterator[Reminder]:
    today = now.date()
    end_of_today = datetime.combine(today + timedelta(days=1), time())
    rows = session.execute(
        select(FollowUp.id, FollowUp.kind, FollowUp.due_at, FollowUp.notes, FollowUp.owner_id, Deal.number)
        .join(Deal, Deal.opportunity_id == FollowUp.opportunity_id)
        .where(FollowUp.done_at.is_(None), FollowUp.due_at < end_of_today, Deal.status == DealStatus.OPEN,
               not_sent_yet("followup-digest", FollowUp.owner_id, today))
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

def stuck_waits(session: Session, now: datetime, rules: ReminderRules) -> Iterator[Reminder]:
    """A wait open too long: a deal's, to its owner and the sales managers; a return's or a warranty
    claim's (its deal is usually won by then), to the people who can answer it and the managers."""
    today = now.date()
    owner = aliased(StaffUser)
    of_case = or_(*(Wait.step.startswith(prefix) for prefix in CASE_STEP_PREFIXES))
    rows = session.execute(select(Wait, Deal, owner).join(Deal, Wait.deal_id == Deal.id)
                           .join(owner, Deal.owner_id == owner.id)
                           .where(Wait.status == WaitStatus.OPEN, Wait.opened_at <= now - timedelta(days=rules.stuck_wait_days),
                                  or_(Deal.status == DealStatus.OPEN, of_case),
                                  not_sent_yet("stuck-wait", Wait.id, today))).all()
    managers = staff_with(session, Role.MANAGER)
    for wait, deal, rep in rows:
        days = (now - wait.opened_at).days
        if wait.of_case:
            case = "-".join(wait.key.split("-")[:2]).upper()  # rma-0001-receive -> RMA-0001
            what = f"{case} of {deal.number} ({deal.customer_name})"
            people = staff_with(session, *(Role(r) for r in wait.roles.split(",")))
        else:
            what, people = f"{deal.number} ({deal.customer_name})", [rep]
        for person in {p.id: p for p in [*people, *managers]}.values():
            yield Reminder("stuck-wait", wait.id, person.email, today,
                           f"{what} has waited {days} days for {wait.step}",
                           "emails/staff_reminder",
                           {"name": person.name, "title": f"{what.split(' (')[0]} is stuck at {wait.step}",
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
        ((Email.status == EmailStatus.PENDING) & (Email.created_at <= cutoff))
        | ((Email.status == EmailStatus.SENDING) & Email.handed_at.is_not(None)) | (Email.status == EmailStatus.FAILED))
        .order_by(Email.created_at)).all()
    if not late:
        return
    pending = [m for m in late if m.status == EmailStatus.PENDING]
    lines = []
    if pending:
        lines.append(f"{len(pending)} pending for over {waited(rules.mail_waiting_minutes * 60)}; the oldest "
                     f"(email {pending[0].id}, {pending[0].subject}) has waited "
                     f"{waited(int((now - pending[0].created_at).total_seconds()))}: is the mail server reachable?")
    unknown = [m for m in late if m.status == EmailStatus.SENDING]
    if unknown:
        lines.append(f"{len(unknown)} of unknown fate (emails {', '.join(str(m.id) for m in unknown[:20])}): "
                     f"ask whether they arrived, then `dealflow outbox confirm ID --by HANDLE` if they did, "
                     f"`dealflow outbox retry ID --force` if not")
    failed = [m for m in late if m.status == EmailStatus.FAILED]
    if failed:
        lines.append(f"{len(failed)} failed for good (emails {', '.join(str(m.id) for m in failed[:20])}): "
                     f"see `dealflow outbox --status failed`")
    for person in staff_with(session, Role.MANAGER):
        yield Reminder("mail-waiting", OUTBOX_ENTITY, person.email, today,
                       f"Mail waiting in the outbox: {len(late)} emails", "emails/staff_reminder",
                       {"name": person.name, "title": "Mail that has not gone out", "lines": lines,
                        "number": f"outbox-{today}"}, about=f"{len(late)} emails in the outbox")


@dataclass(frozen=True)
class ReminderRule:
    """A reminder rule: its name, and the scan that finds what is due. A wait kind names the rule
    that chases it (``models.waits``): its own, or the stuck-wait rule every wait falls under."""
    name: str
    scan: Callable[[Session, datetime, ReminderRules], Iterator[Reminder]]


FOLLOWUP_DIGEST = ReminderRule("followup-digest", lambda session, now, rules: followup_digests(session, now))
STUCK_WAIT = ReminderRule("stuck-wait", stuck_waits)
MAIL_WAITING = ReminderRule("mail-waiting", mail_waiting)

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

