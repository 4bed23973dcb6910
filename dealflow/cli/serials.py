"""``dealflow serial``: which unit went to whom, on which order, when it shipped and until when its
warranty runs; its history (received, shipped, and returns and claims as they come)."""

from __future__ import annotations

from typing import Any

import click

from .common import DealflowGroup, emit, table

LIST_COLUMNS = ["serial", "sku", "status", "customer", "deal", "shipped_on", "warranty"]


@click.group(cls=DealflowGroup)
def serial() -> None:
    """Serial numbers: one unit's record, and the units of a customer or whose warranty ends soon."""


def _text(row: dict[str, Any]) -> str:
    shipped = row["shipped_on"] is not None
    lines = [
        f"{row['serial']}  {row['sku']}  {row['product']}",
        f"  status     {row['status']}",
        f"  received   {row['received_at'][:10]}" + (f" ({row['received_ref']})" if row["received_ref"] else
                                                      " (first recorded when it shipped)"),
    ]
    if shipped:
        lines += [f"  customer   {row['customer'] or '-'}",
                  f"  deal       {row['deal'] or '-'}, order {row['order'] or '-'}, shipment {row['shipment'] or '-'}",
                  f"  shipped    {row['shipped_on']}"]
    lines.append(f"  warranty   {row['warranty']}")
    lines.append("  history")
    lines += [f"    {h['at'][:16].replace('T', ' ')}  {h['event']:<16} {h['reference'] or '-':<14} "
              f"{h['deal'] or '':<10} by {h['by']}" for h in row["history"]]
    return "\n".join(lines)


@serial.command("show")
@click.argument("sn")
@click.option("--json", "as_json", is_flag=True, help="Print the unit as JSON.")
def serial_show(sn: str, as_json: bool) -> None:
    """One unit, by its serial number (SKU:SN where two products share it): its product, where it
    is, the customer, deal, order and shipment it left in, the ship date, the warranty's end
    (expired, or the days left) and its history."""
    from application import serials

    row = serials.show_serial(sn)
    emit(row, as_json, _text(row))


@serial.command("list")
@click.option("--customer", help="Only the units shipped to this customer (name, number or e-mail).")
@click.option("--expiring-within", "expiring_within",
              help="Only units with their customer whose warranty ends within this time from today: 30d, 12w, 6m.")
@click.option("--json", "as_json", is_flag=True, help="Print the units as JSON.")
def serial_list(customer: str | None, expiring_within: str | None, as_json: bool) -> None:
    """Units by their warranty's end, soonest first."""
    from application import serials

    rows = serials.list_serials(customer, expiring_within)
    emit(rows, as_json, table(rows, LIST_COLUMNS))
