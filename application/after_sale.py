"""A deal's story after the sale, for its summary (``deal show``) and its page: its returns (RMA)
with their state, lines, outcome and credit note, and its warranty claims (WC) with their serial
number, state and diagnosis, each with the step it waits at and for whom. The serial numbers that
shipped are on the deal's shipments (``services.views.deal_summary``).

Each case reads as ``return show`` / ``warranty show`` print it (``cases.case_summary_of``), plus
what the deal's reader needs beside it. The cases are read with their lines, serial numbers and
credit notes in a few queries whatever their number, and none at all for a deal that never
shipped (nothing can come back from it)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from models.deal import Deal, Wait
from models.markdown import Markdown, link, table
from models.return_steps import outcome_words
from models.returns import ReturnLine, ReturnLineSerial, ReturnOrder, return_by_number
from models.serials import Serial
from models.warranty import WarrantyClaim
from services.views import waiting_for

from .cases import case_summary_of
from .uow import unit_of_work


def after_sale(session: Session, deal: Deal) -> dict[str, list[dict[str, Any]]]:
    """``returns`` and ``claims`` of the deal, oldest first (both empty before anything shipped)."""
    if deal.order is None or not deal.order.shipments:
        return {"returns": [], "claims": []}
    returns = session.scalars(
        select(ReturnOrder).where(ReturnOrder.deal_id == deal.id).order_by(ReturnOrder.id).options(
            selectinload(ReturnOrder.lines).options(
                joinedload(ReturnLine.order_line),
                selectinload(ReturnLine.serials).joinedload(ReturnLineSerial.serial)),
            joinedload(ReturnOrder.credit_note))).unique().all()
    claims = session.scalars(
        select(WarrantyClaim).where(WarrantyClaim.deal_id == deal.id).order_by(WarrantyClaim.id).options(
            joinedload(WarrantyClaim.serial).joinedload(Serial.product))).all()
    waits = {_case_of(w.key): w for w in deal.case_waits}
    claim_of = {claim.return_id: claim.number for claim in claims if claim.return_id is not None}
    out_returns = [_return(ret, waits.get(ret.number), claim_of.get(ret.id)) for ret in returns]
    out_claims = [_claim(claim, waits.get(claim.number) or (waits.get(claim.ret.number) if claim.ret else None))
                  for claim in claims]
    return {"returns": out_returns, "claims": out_claims}


def _case_of(key: str) -> str:
    """The case a wait's key is of: ``rma-0001-receive`` -> RMA-0001."""
    return "-".join(key.split("-")[:2]).upper()


def _waiting(wait: Wait | None) -> dict[str, Any] | None:
    if wait is None:
        return None
    return {"step": wait.step, "key": wait.key, "roles": wait.role_list,
            "since": wait.opened_at.isoformat(timespec="seconds"), "for": waiting_for(wait.step, wait.role_list)}


def _return(ret: ReturnOrder, wait: Wait | None, claim: str | None) -> dict[str, Any]:
    note = ret.credit_note
    return {**case_summary_of(ret),
            "requested_at": ret.requested_at.isoformat(timespec="seconds"), "requested_by": ret.requested_by,
            "decided_by": ret.decided_by, "decision_note": ret.decision_note or None,
            "warranty_claim": claim,
            "outcome": outcome_words(ret) if ret.inspected_at is not None else None,
            "credit": ({"number": note.number, "amount": str(note.amount), "restocking_fee": str(note.restocking_fee),
                        "settlement": note.settlement, "refunded": str(note.refunded),
                        "kept_as_credit": str(note.kept_as_credit), "refund_number": note.refund_number}
                       if note is not None else None),
            "shipped_back": ({"on": ret.shipped_back_on.isoformat(), "by": ret.shipped_back_by,
                              "carrier": ret.back_carrier, "tracking_number": ret.back_tracking_number,
                              # the delivery note's number, as ``return_steps.ship_back`` issues it
                              "delivery_note": f"{ret.number}-BACK"}
                             if ret.shipped_back_on is not None else None),
            "waiting_for": _waiting(wait)}


def return_story(number: str) -> dict[str, Any]:
    """One return as the deal's reader sees it (``return show``): what ``after_sale`` says of it
    (its refusal, credit note, shipment back, whom it waits for), with the deal's ``currency``."""
    with unit_of_work() as s:
        ret = return_by_number(s, number)
        wait = next((w for w in ret.deal.case_waits if _case_of(w.key) == ret.number), None)
        return {**_return(ret, wait, ret.claim.number if ret.claim is not None else None),
                "currency": ret.deal.currency}


def _claim(claim: WarrantyClaim, wait: Wait | None) -> dict[str, Any]:
    return {**case_summary_of(claim), "opened_at": claim.opened_at.isoformat(timespec="seconds"),
            "opened_by": claim.opened_by, "diagnosed_by": claim.diagnosed_by, "closed_by": claim.closed_by,
            "waiting_for": _waiting(wait)}


# --- the deal's page -----------------------------------------------------------------------------

def after_sale_page(cases: dict[str, list[dict[str, Any]]], currency: str,
                    run_link=lambda _run_id: None) -> list[Markdown]:
    """The page's sections of the deal's returns and warranty claims (none without any). Every value
    a person typed (a reason, an issue, a diagnosis, a note) is escaped. ``run_link(flow run id)``:
    the case's run page, where its wait is answered (or None)."""
    out: list[Markdown] = []
    if cases["returns"]:
        out += [Markdown(""), Markdown("## Returns")]
        for ret in cases["returns"]:
            out += _return_section(ret, currency, run_link)
    if cases["claims"]:
        out += [Markdown(""), Markdown("## Warranty claims")]
        for claim in cases["claims"]:
            out += _claim_section(claim, run_link)
    return out


def _waiting_line(case: dict[str, Any], run_link) -> list[Markdown]:
    wait = case["waiting_for"]
    if wait is None:
        return []
    url = run_link(case["flow_run_id"]) if case["flow_run_id"] else None
    return [Markdown("\n⏸ waiting since {} UTC for {} ({})").format(wait["since"], wait["for"], wait["key"])
            + (Markdown(": ") + link("answer it on the run's page", url) + Markdown(" (menu ⋮ → Resume)")
               if url else Markdown(""))]


def _return_section(ret: dict[str, Any], currency: str, run_link) -> list[Markdown]:
    kind = (Markdown("warranty return for claim {}").format(ret["warranty_claim"]) if ret["warranty_claim"]
            else Markdown("warranty return") if not ret["with_credit"] else Markdown("return"))
    out = [Markdown(""), Markdown("**{}** ({}) · **{}** · asked for on {} by {}: {}").format(
        ret["number"], kind, ret["status"], ret["requested_at"][:10], ret["requested_by"], ret["reason"])]
    out += _waiting_line(ret, run_link)
    out += [Markdown(""), table(["SKU", "qty", "received", "serial numbers"],
                                [[ln["sku"], ln["quantity"], ln["received"], ", ".join(ln["serials"]) or "—"]
                                 for ln in ret["lines"]], align=["---", "---:", "---:", "---"])]
    if ret["status"] == "refused":
        out.append(Markdown("\nRefused by {}: {}").format(ret["decided_by"] or "?", ret["decision_note"] or "?"))
    elif ret["decided_by"] and ret["decision_note"] and not ret["warranty_claim"]:  # (else: the claim's diagnosis)
        out.append(Markdown("\nAuthorized by {}: {}").format(ret["decided_by"], ret["decision_note"]))
    if ret["outcome"]:
        out.append(Markdown("\nOutcome: {}.").format(ret["outcome"]))
    credit = ret["credit"]
    if credit is not None:
        settled = (Markdown("refunded {} {} ({})").format(credit["refunded"], currency, credit["refund_number"])
                   if credit["settlement"] == "refund" else
                   Markdown("{} {} kept as the customer's credit").format(credit["kept_as_credit"], currency))
        fee = (Markdown(", less a restocking fee of {} {} ({} %)").format(
            credit["restocking_fee"], currency, format(Decimal(ret["restocking_fee_pct"]).normalize(), "f"))
            if Decimal(credit["restocking_fee"]) else Markdown(""))
        out.append(Markdown("\nCredit note **{}**: {} {} credited{}; {}.").format(
            credit["number"], credit["amount"], currency, fee, settled))
    elif not ret["with_credit"]:
        out.append(Markdown("\nA warranty return: nothing is credited."))
    return out


def _claim_section(claim: dict[str, Any], run_link) -> list[Markdown]:
    out = [Markdown(""), Markdown("**{}** · {} serial number **{}** · **{}** · warranty until {} · opened on {} by {}: {}")
           .format(claim["number"], claim["sku"], claim["serial"], claim["status"], claim["warranty_end"],
                   claim["opened_at"][:10], claim["opened_by"], claim["issue"])]
    out += _waiting_line(claim, run_link)
    if claim["diagnosis"]:
        resolution = (Markdown("return for repair under {}").format(claim["return"]) if claim["return"]
                      else Markdown("{}").format(claim["resolution"].replace("_", " ")))
        out.append(Markdown("\nDiagnosis by {}: {} → {}.").format(claim["diagnosed_by"] or "?", claim["diagnosis"],
                                                                 resolution))
    if claim["close_note"]:
        out.append(Markdown("\nClosed by {}: {}").format(claim["closed_by"] or "?", claim["close_note"]))
    return out
