"""Read models for people: a deal's summary, the inbox of open waits, stock. Plain data out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Deal, Document, Email, StaffUser, Wait, utcnow
from models.deposits import BEFORE_WORDS
from models.markdown import Markdown, table
from models.markdown import link as mdlink
from models.money import round_money
from models.prompts import sales_notes
from models.serials import serials_of_lines
from models.states import DealStatus, LeadStatus, OrderStatus, RevisionStatus, WaitStatus

from .timeline import STEP_TITLES, happened


def deal_history(session: Session, deal: Deal) -> list[dict[str, Any]]:
    """Every audit-log entry about the deal, oldest first: when (to the second, UTC), who, what
    kind, about what, and in a few words what came of it (the step's outcome, or its details
    without the answer itself, which the deal's other parts show)."""
    from models.audit import AuditEntry

    entries = session.scalars(select(AuditEntry).where(AuditEntry.deal_id == deal.id)
                              .order_by(AuditEntry.at, AuditEntry.id))
    out = []
    for e in entries:
        details = e.details or {}
        what = details.get("outcome") or ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in details.items()
            if k != "answer" and isinstance(v, str | int | float | Decimal) and not isinstance(v, bool))
        out.append({"at": e.at.strftime("%Y-%m-%d %H:%M:%S"), "actor": e.actor, "action": e.action,
                    "subject": e.subject, "what": str(what)})
    return out


def deal_summary(session: Session, deal: Deal, settings=None) -> dict[str, Any]:
    est = deal.estimate
    order = deal.order
    invoice = deal.invoice
    receipt = order.pick_release.receipt if order and order.pick_release else None
    wait = deal.open_wait
    docs = session.scalars(select(Document).where(Document.deal_id == deal.id).order_by(Document.id)).all()
    mails = session.scalars(select(Email).where(Email.deal_id == deal.id).order_by(Email.id)).all()
    shipments = order.shipments if order else []  # and the serial numbers that left in each line (one query)
    shipped = serials_of_lines(session, [line.id for shipment in shipments for line in shipment.lines])
    return {
        "deal": deal.number,
        "customer": deal.customer_name,
        "status": deal.status,
        "currency": deal.currency,
        "lost_reason": deal.lost_reason or None,
        "owner": deal.owner.handle,
        "engineer": deal.opportunity.engineer.handle if deal.opportunity and deal.opportunity.engineer else None,
        "stage": deal.opportunity.stage if deal.opportunity else "lead",
        "where": where_it_stands(deal),
        "sales_notes": [{"who": who, "text": text} for who, text in sales_notes(deal)],
        "flow_run_id": deal.flow_run_id,
        "waiting_for": ({"step": wait.step, "key": wait.key, "roles": wait.role_list, "for": waiting_for(
            wait.step, wait.role_list), "since": wait.opened_at.isoformat(timespec="seconds")} if wait else None),
        "estimate_revisions": [
            {"number": r.number, "status": r.status, "total": str(r.totals.total),
             "change_request": r.change_request.text if r.change_request else None,
             "discount": ({"asked_pct": str(r.discount_asked_pct), "limit_pct": str(r.discount_limit_pct),
                           "decision": r.discount_decision or "waiting",
                           "by": r.discount_decided_by.handle if r.discount_decided_by else None,
                           "reason": r.discount_reason or None} if r.discount_asked_pct is not None else None)}
            for r in (est.revisions if est else [])],
        "order": ({"number": order.number, "status": order.status, "total": str(order.totals.total),
                   "qa_attempts": [{"attempt": i.attempt, "passed": i.passed, "by": i.inspector.handle,
                                    "notes": i.notes} for i in order.inspections]} if order else None),
        "receipt": ({"number": receipt.number, "amount": str(round_money(receipt.amount, deal.currency))}
                    if receipt else None),
        "shipments": [{"number": s.number, "date": s.at.date().isoformat(), "carrier": s.carrier,
                       "tracking_number": s.tracking_number, "lines": {sl.order_line.sku: sl.quantity for sl in s.lines},
                       "serials": {sl.order_line.sku: shipped[sl.id] for sl in s.lines if sl.id in shipped}}
                      for s in shipments],
        "invoice": ({"number": invoice.number, "total": str(invoice.totals.total), "paid": str(invoice.paid),
                     "due": str(invoice.amount_due), "due_date": invoice.due_date.isoformat(),
                     "status": invoice.status} if invoice else None),
        "payments": [{"number": p.number, "amount": str(round_money(p.amount, deal.currency)), "method": p.method}
                     for p in (invoice.payments if invoice else [])],
        "deposit": _deposit(deal),
        "credit_holds": [{"status": h.status, "why": h.why, "reason": h.reason or None,
                          "by": h.decided_by.handle if h.decided_by else None,
                          "deposit_pct": str(h.deposit_pct) if h.deposit_pct is not None else None}
                         for h in deal.credit_holds],
        "credit_notes": [{"number": n.number, "invoice": n.invoice.number, "invoice_title": n.invoice.title,
                          "amount": str(n.amount), "settlement": n.settlement, "refunded": str(n.refunded),
                          "kept_as_credit": str(n.kept_as_credit), "refund_method": n.refund_method.replace("_", " "),
                          "refund_number": n.refund_number, "return": n.ret.number if n.is_return else None,
                          "reason": n.reason} for n in deal.credit_notes],
        "documents": [{"id": d.id, "kind": d.kind, "number": d.number, "file": d.filename, "pdf": d.pdf_filename}
                      for d in docs],
        "emails": [{"id": m.id, "kind": m.kind, "to": m.to_addr, "subject": m.subject, "status": m.status}
                   for m in mails],
    }


def _deposit(deal: Deal) -> dict[str, Any] | None:
    """The deal's deposit: its terms, its invoice and what was paid on it (None: none asked)."""
    order, inv = deal.order, deal.deposit_invoice
    if order is None or not order.deposit_terms.asked:
        return None
    return {"terms": order.deposit_terms.words(), "pct": str(order.deposit_pct), "before": order.deposit_before,
            "invoice": inv.number if inv else None, "total": str(inv.totals.total) if inv else None,
            "paid": str(inv.paid) if inv else "0", "due": str(inv.amount_due) if inv else None,
            "due_date": inv.due_date.isoformat() if inv else None,
            "status": inv.status if inv else None,
            "payments": [{"number": p.number, "amount": str(round_money(p.amount, deal.currency)),
                          "method": p.method} for p in (inv.payments if inv else [])]}


def open_waits_query(role: str | None = None):
    """The open waits, oldest first (``role``: those it may answer; a wait's roles are a comma-
    separated list), with what an inbox row shows loaded in a few queries, not a few per wait: the
    deal, its customer (or lead), its invoices with their lines and payments, its estimate's
    revisions with their lines. With thousands of deals open, one query per wait and per
    relation took 20 s."""
    from sqlalchemy import or_
    from sqlalchemy.orm import selectinload

    from models import Estimate, EstimateRevision, Invoice

    q = select(Wait).where(Wait.status == WaitStatus.OPEN)
    if role:
        q = q.where(or_(Wait.roles == role, Wait.roles.startswith(f"{role},"), Wait.roles.endswith(f",{role}"),
                        Wait.roles.contains(f",{role},")))
    money = (selectinload(Invoice.lines), selectinload(Invoice.payments))
    deal = selectinload(Wait.deal)
    return q.order_by(Wait.opened_at, Wait.id).options(
        deal.selectinload(Deal.customer), deal.selectinload(Deal.lead),
        deal.selectinload(Deal.invoice).options(*money), deal.selectinload(Deal.deposit_invoice).options(*money),
        deal.selectinload(Deal.estimate).selectinload(Estimate.revisions).selectinload(EstimateRevision.lines))


def inbox(session: Session, role: str | None = None, run_states: dict[str, str] | None = None,
          limit: int | None = None) -> list[dict[str, Any]]:
    """Open waits, oldest first (``limit``: only that many). With ``run_states`` (flow run id ->
    Prefect state name, read from the Prefect API) each row also says whether its run really
    waits there."""
    now = utcnow()
    rows = []
    for wait in session.scalars(open_waits_query(role).limit(limit)).all():
        deal = wait.deal
        amount = None
        if wait.step == "payment" and deal.invoice:
            amount = str(deal.invoice.amount_due)
        elif wait.step == "deposit" and deal.deposit_invoice:
            amount = str(deal.deposit_invoice.amount_due)
        elif deal.estimate and deal.estimate.latest:
            amount = str(deal.estimate.latest.totals.total)
        row = {"deal": deal.number, "customer": deal.customer_name, "step": wait.step, "key": wait.key,
               "roles": wait.role_list, "waiting_for": waiting_for(wait.step, wait.role_list),
               "since": wait.opened_at.isoformat(timespec="seconds"),
               "waiting_hours": round((now - wait.opened_at).total_seconds() / 3600, 1),
               "amount": amount, "currency": deal.currency, "flow_run_id": wait.flow_run_id}
        if run_states is not None:
            row["run"] = run_states.get(wait.flow_run_id or "", "not on this server")
        rows.append(row)
    return rows


def answerer(session: Session, wait: Wait) -> str:
    """Who answered a wait, as an auditor reads it: 'Mark Henry (mark)', or for a manager standing
    in, 'manager Morgan Lee for qa'."""
    person = session.scalars(select(StaffUser).where(StaffUser.handle == wait.answered_by)).one_or_none()
    name = person.name if person else (wait.answered_by or "?")
    if wait.stand_in_for:
        return f"manager {name} for {wait.stand_in_for}"
    return f"{name} ({wait.answered_by})" if person else name


def deal_page(session: Session, deal: Deal, link: Callable[[int], str | None] = lambda _id: None,
              note: str | None = None, link_days: int | None = None, run_link: str | None = None,
              after_sale: Iterable[Markdown] = ()) -> Markdown:
    """The deal as one Markdown page (state, money, lines, shipments with their serial numbers, what
    came after the sale (``after_sale``: its returns and claims), documents, answers, timeline): the
    deal's artifact in the Prefect UI. ``link(document id)``: a link a colleague on another
    machine can open (through the portal, valid ``link_days``), or None. Every value is escaped
    (``models.markdown``): a name, a note or an answer someone typed shows as typed, never as a
    link, image or tag. ``run_link``: the run's page in the Prefect UI, where a wait is answered."""
    from models import AuditEntry

    d = deal_summary(session, deal)
    names = _names(session)
    out = [Markdown("# {} · {}").format(d["deal"], d["customer"]), Markdown(""),
           Markdown("**{}** · owner {}").format(d["where"], names.get(d["owner"], d["owner"]))
           + (Markdown(" · engineer {}").format(names.get(d["engineer"], d["engineer"])) if d["engineer"]
              else Markdown(""))]
    if note:  # e.g. answers are not verified in this installation
        out.append(Markdown("\n> ⚠ {}").format(note))
    if d["waiting_for"]:
        w = d["waiting_for"]
        out.append(Markdown("\n⏸ waiting since {} UTC for {}").format(w["since"], waiting_for(w["step"], w["roles"])))
        if run_link:
            out.append(Markdown("\n") + mdlink("Answer it on the run's page", run_link)
                       + Markdown(" (menu ⋮ → Resume)."))
    if d["sales_notes"]:
        out += [Markdown(""), Markdown("## What sales learned"), Markdown("")]
        out += [Markdown("- **{}**: {}").format(n["who"], " ".join(n["text"].split())) for n in d["sales_notes"]]
    money = []
    if d["estimate_revisions"]:
        r = d["estimate_revisions"][-1]
        money.append([Markdown("estimate {}").format(r["number"]), r["status"], r["total"]])
    if d["order"]:
        money.append([Markdown("order {}").format(d["order"]["number"]), d["order"]["status"], d["order"]["total"]])
    dep = d["deposit"]
    if dep and dep["invoice"]:
        money.append([Markdown("deposit invoice {}").format(dep["invoice"]), _invoice_state(
            dep["status"], dep["paid"], dep["due"], dep["due_date"], deal.currency), dep["total"]])
    if d["invoice"]:
        i = d["invoice"]
        money.append([Markdown("invoice {}").format(i["number"]),
                      _invoice_state(i["status"], i["paid"], i["due"], i["due_date"], deal.currency), i["total"]])
    for n in d["credit_notes"]:
        settled = {"refund": Markdown("refunded {} {} ({}, {})").format(n["refunded"], deal.currency, n["refund_method"],
                                                                       n["refund_number"]),
                   "credit": Markdown("{} {} kept as the customer's credit").format(n["kept_as_credit"], deal.currency),
                   }.get(n["settlement"], Markdown("nothing was paid"))
        of = (Markdown("return {} against {} {}; ").format(n["return"], n["invoice_title"].lower(), n["invoice"])
              if n.get("return") else Markdown("cancels {} {}; ").format(n["invoice_title"].lower(), n["invoice"]))
        money.append([Markdown("credit note {}").format(n["number"]), of + settled,
                      Markdown("−{}").format(n["amount"])])
    if money:
        out += [Markdown(""), table(["document", "state", Markdown("total ({})").format(deal.currency)], money,
                                    align=["---", "---", "---:"])]
    if dep:
        note = next((n["number"] for n in d["credit_notes"] if n["invoice"] == dep["invoice"]), None)
        out.append(Markdown("\nDeposit: {}").format(dep["terms"]) + (
            Markdown(", not invoiced yet") if not dep["invoice"]
            else Markdown(", invoice {} credited by credit note {} ({} {} had been paid)").format(
                dep["invoice"], note, dep["paid"], deal.currency) if note
            else Markdown(", invoice {}: {} {} paid, {} {} due").format(dep["invoice"], dep["paid"], deal.currency,
                                                                       dep["due"], deal.currency)) + (
            Markdown("; deducted on invoice {}").format(d["invoice"]["number"]) if d["invoice"]
            and any(ln.order_line_id is None for ln in deal.invoice.lines) else Markdown("")) + Markdown("."))
    out += [hold_line(h, names) for h in deal.credit_holds]
    if deal.status == DealStatus.CANCELLED:
        out.append(Markdown("\nCancelled{}: {}").format(
            Markdown(" on {:%Y-%m-%d}").format(deal.closed_at) if deal.closed_at else Markdown(""),
            " ".join((deal.lost_reason or "").split())))
    if deal.estimate:
        out += [discount_line(rev, names) for rev in deal.estimate.revisions if rev.discount_asked_pct is not None]
    source = (deal.order.lines if deal.order else deal.estimate.latest.lines if deal.estimate and deal.estimate.latest
              else [])
    if source:
        out += [Markdown(""), Markdown("## Lines"), Markdown(""),
                table(["SKU", "qty", "shipped", "unit price", "disc. %", "net", "tax"],
                      [[ln.sku, ln.quantity, getattr(ln, "shipped_qty", ""), ln.unit_price,
                        ln.discount_pct, ln.net, ln.tax] for ln in source],
                      align=["---", "---:", "---:", "---:", "---:", "---:", "---:"])]
    out += shipments_table(d["shipments"])
    out += list(after_sale)  # its returns and warranty claims (``application.after_sale``)
    if d["documents"]:
        urls = {x["id"]: link(x["id"]) for x in d["documents"]}
        out += [Markdown(""), Markdown("## Documents"), Markdown("")]
        if any(urls.values()):
            out += [Markdown("Each opens as a PDF through the portal, for {} days from {:%Y-%m-%d} (the page "
                             "gets fresh links at every step; `dealflow deal show` prints the files)."
                             ).format(link_days, utcnow()), Markdown("")]
        out += [table(["kind", "number", "PDF"],
                      [[x["kind"], x["number"], mdlink(Markdown("{} PDF").format(Markdown(_plain_number(x["number"]))),
                                                       urls[x["id"]]) if urls[x["id"]] else x["pdf"]]
                       for x in d["documents"]])]
    closed = [w for w in deal.waits if w.status != WaitStatus.OPEN]
    if closed:
        out += [Markdown(""), Markdown("## Answers"), Markdown(""),
                table(["wait", "answer", "by", "proven by", "when (UTC)"],
                      [[w.key, w.status, answerer(session, w),
                        (w.proof or "") if w.status == WaitStatus.ANSWERED else f"(tried: {w.proof or 'none'})", Markdown("{:%Y-%m-%d %H:%M:%S}").format(
                          w.answered_at) if w.answered_at else ""] for w in closed])]
    entries = session.scalars(select(AuditEntry).where(AuditEntry.deal_id == deal.id).order_by(AuditEntry.id)).all()
    out += [Markdown(""), Markdown("## Timeline"), Markdown(""),
            table(["when (UTC)", "what happened"],
                  [[Markdown("{:%Y-%m-%d %H:%M}").format(e.at), happened(e, names)] for e in entries])]
    return Markdown("\n").join(out)


def shipments_table(shipments: list[dict[str, Any]]) -> list[Markdown]:
    """The deal's shipments, a row per line shipped, with the serial numbers that left in it."""
    rows = [[sh["number"] if i == 0 else "", sh["date"] if i == 0 else "",
             f"{sh['carrier']} {sh['tracking_number']}" if i == 0 else "", sku, qty,
             ", ".join(sh["serials"].get(sku, [])) or "—"] for sh in shipments
            for i, (sku, qty) in enumerate(sh["lines"].items())]
    return [Markdown(""), Markdown("## Shipments"), Markdown(""), table(
        ["shipment", "date", "carrier, tracking", "SKU", "qty", "serial numbers"], rows,
        align=["---", "---", "---", "---", "---:", "---"])] if rows else []


def _invoice_state(status: str | None, paid: str, due: str | None, due_date: str | None, currency: str) -> Markdown:
    """An invoice's state in the money table: 'partially paid: 100 USD paid, 50 USD due by …'."""
    if status == "credited":
        return Markdown("credited: {} {} paid on it").format(paid, currency)
    return Markdown("{}: {} {} paid, {} {} due by {}").format((status or "").replace("_", " "), paid, currency, due,
                                                              currency, due_date)


def hold_line(hold, names: dict[str, str]) -> Markdown:
    """A credit hold in a sentence: why it was held, and what credit control decided, by whom, why."""
    held = Markdown("\nCredit hold on {} {} ({}): {}").format(hold.order_total, hold.currency,
                                                               hold.opened_at.date(), " ".join(hold.why.split()))
    if hold.is_open:
        return held + Markdown("; waiting for credit control's decision.")
    by = names.get(hold.decided_by.handle, hold.decided_by.handle) if hold.decided_by else "?"
    if hold.status == "deposit":  # (a released or rejected hold has no deposit %)
        done = Markdown("released by {} with a {} % deposit {}").format(
            by, format(Decimal(hold.deposit_pct or 0).normalize(), "f"), BEFORE_WORDS.get(hold.deposit_before or "", ""))
    else:
        done = Markdown("{} by {}").format(hold.status, by)
    return held + Markdown(" → ") + done + Markdown(': "{}".').format(" ".join(hold.reason.split()))


def discount_line(rev, names: dict[str, str]) -> Markdown:
    """Who approved what discount on a revision: 'Revision 2: 15 % asked by Mark Henry (limit
    10 %), lowered to 12 % by Morgan Lee: "reason"'."""
    asked = Markdown("\nRevision {}: {} % discount asked by {} (limit {} %)").format(
        rev.revision, format(rev.discount_asked_pct.normalize(), "f"), rev.prepared_by.name,
        format(rev.discount_limit_pct.normalize(), "f"))
    if rev.discount_decision is None:
        return asked + Markdown(", waiting for a sales manager's approval.")
    by = rev.discount_decided_by.name if rev.discount_decided_by else "?"
    done = {"approved": Markdown(", approved by {}").format(by),
            "lowered": Markdown(", lowered to {} % by {}").format(format(rev.largest_discount.normalize(), "f"), by),
            "returned": Markdown(", sent back by {}").format(by)}[rev.discount_decision]
    reason = Markdown(': "{}"').format(" ".join(rev.discount_reason.split())) if rev.discount_reason.strip() else ""
    return asked + done + reason + Markdown(".")


def _plain_number(number: str) -> str:
    """A document number as link text: letters, digits and hyphens need no escaping."""
    return "".join(c for c in number if c.isalnum() or c == "-")


def _names(session: Session) -> dict[str, str]:
    return {p.handle: p.name for p in session.scalars(select(StaffUser))}


# what a deal stopped at these steps is, as finance says it: "waiting for deposit", "on credit hold"
WAITING_WORDS = {"deposit": "deposit", "credit": "the credit decision (on credit hold)"}
ROLE_NAMES = {"sales_rep": "a sales rep", "sales_engineer": "a sales engineer", "qa": "QA", "delivery": "delivery",
              "finance": "finance", "credit": "credit control", "manager": "a manager", "customer": "the customer"}


def waiting_for(step: str, roles: list[str]) -> str:
    """'QA sign-off, by QA', 'deposit, by finance' or 'the customer's decision, by the customer or
    a sales engineer' (what follows "waiting for")."""
    what = WAITING_WORDS.get(step, STEP_TITLES.get(step, step))
    return f"{what}, by {' or '.join(ROLE_NAMES.get(r, r) for r in roles)}"


def where_it_stands(deal: Deal) -> str:
    """The deal's real stage, as the sales floor says it: where the process is, not the
    opportunity's pipeline stage (which is closed_won from the order on)."""
    if deal.status in (DealStatus.LOST, DealStatus.CANCELLED):
        word = "cancelled" if deal.status == DealStatus.CANCELLED else "lost"
        reason = " ".join((deal.lost_reason or "").split())
        return f"{word}: {reason[:80]}{'…' if len(reason) > 80 else ''}" if reason else word
    if deal.status == DealStatus.WON:
        return "won, paid in full"
    if deal.opportunity is None:
        return "a lead, to qualify" if deal.lead.status == LeadStatus.NEW else "a qualified lead"
    order, invoice = deal.order, deal.invoice
    if order is None:
        latest = deal.estimate.latest if deal.estimate else None
        if latest is not None and any(h.is_open for h in deal.credit_holds):
            return f"estimate {latest.number} accepted, on credit hold"
        if latest is not None and latest.status == RevisionStatus.SENT:
            return f"estimate {latest.number} with the customer"
        return f"opportunity, {deal.opportunity.stage.replace('_', ' ')}"
    if invoice is not None:
        return f"invoice {invoice.number} {invoice.status.replace('_', ' ')}"
    if order.waits_for_deposit():
        return f"order {order.number} waiting for deposit {deal.deposit_invoice.number}"
    if order.status == OrderStatus.AWAITING_QA:
        return f"order {order.number} in QA"
    if order.shipments:
        return f"order {order.number} partly shipped"
    return f"order {order.number} released for picking"


def run_name(deal_number: str) -> str:
    """A deal's flow run name: its number and its customer (``DEAL-0001-acme-steel``)."""
    from models.deal import deal_by_number

    from .db import session_scope

    try:
        with session_scope() as s:
            name = deal_by_number(s, deal_number).customer_name
    except Exception:  # the name is cosmetic; never fail a run over it
        return f"deal-{deal_number}"
    slug = "-".join(filter(None, "".join(c if c.isalnum() else " " for c in name.lower()).split()))
    return f"{deal_number}-{slug}"[:100]
