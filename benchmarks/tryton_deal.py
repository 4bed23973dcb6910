"""How long the Tryton ERP (8.2) takes per complete lead-to-cash deal on this machine, to compare
with benchmarks/lifecycle.py, which runs the same deal (the Glocial scenario, dealflow/scenario.py
SCRIPT) through dealflow.

One deal, timed (wall clock and this process's CPU time), every step through proteus the way
Tryton's own scenario tests drive it (each call its own committed transaction, as a client's
clicks are):

  1. a lead (sale.opportunity) for the customer, qualified to an opportunity (budget 150,000) by
     its salesperson, then handed off: its employee set to the sales engineer;
  2. estimate revision 1: the opportunity's three lines (CNC-LATHE-2000 x 2, TOOL-KIT-PRO x 2,
     CHUCK-3J-250 x 2), converted to a sale, the lathes' unit price 5% below list (sale 8.2 has
     no discount field without the sale_discount module), quoted;
  3. the customer asks for changes: the quotation back to draft, its lines changed (3 lathes at
     8% off, 3 kits, 3 chucks, 10 COOLANT-20L added), quoted again (revision 2); approved: the
     customer's PO number as the sale's reference, confirmed (confirming processes it: the customer
     shipment and the one invoice are created, the invoice method being Tryton's default, "on
     order");
  4. QA: a quality control (five yes/no checks, as dealflow's checklist) requires an inspection of
     the lathe when a customer shipment holding it is picked. Picking opens the inspection; the
     hydraulics check fails, so the inspection fails and Tryton opens a quality alert, and picking
     is refused while that alert is unresolved. The alert is resolved (seal replaced) and a second
     inspection of the shipment, made by hand, passes; only then is it picked. (Tryton's gate is
     the alert: once it is resolved it would let the pick through without the second inspection,
     and its pick wizard asks for an inspection only while the shipment has none);
  5. two partial shipments, Tryton's standard way (as sale's own scenario does): the waiting
     shipment's inventory moves lowered to what is sent (2 lathes, 2 kits, 2 chucks, 10 coolant),
     then assigned, picked, packed and done; the sale then creates a second shipment for the rest
     (1 lathe, 1 kit, 1 chuck), assigned, picked (Tryton's control is per shipment, so the lathe in
     it gets its own passing inspection, a step dealflow does not have), packed and done. The
     warehouse's quantity on hand of each product is checked after each shipment;
  6. the invoice posted, then paid in two payments with the invoice's pay wizard (cash journal):
     40% of the total (a partial payment), the invoice checked to be still 'posted', then the
     rest, the invoice checked to be 'paid', the sale 'done' and the opportunity 'won'.

Not timed: a fresh SQLite database file in a temporary folder, the modules activated, a company
(USD), the minimal chart of accounts, a fiscal year with its invoice sequences, a cash payment
method, a 10% sales tax, a customer, the salesperson and the sales engineer, the four products
(goods, list price and cost) with stock for every deal received into the warehouse by an
inventory, and the quality control.

Tryton's figure renders no documents and sends no mail; dealflow's deal renders 9 PDFs and sends
10 emails. Tryton runs in this process (trytond's Python API under proteus), with no HTTP server,
no client and no queue worker.

Tryton lives in its own virtual environment, outside the project's:

    python3 -m venv /tmp/tryton-venv
    /tmp/tryton-venv/bin/pip install 'proteus==8.2.*' 'trytond==8.2.*' \\
        'trytond_sale==8.2.*' 'trytond_sale_opportunity==8.2.*' 'trytond_quality==8.2.*'

    /tmp/tryton-venv/bin/python benchmarks/tryton_deal.py --deals 5
    /tmp/tryton-venv/bin/python benchmarks/tryton_deal.py --deals 5 --json   # last line: JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

DB_NAME = "tryton_deal"
MODULES = ["sale_opportunity", "sale", "quality"]  # stock, account_invoice… come as dependencies
TAX_RATE = Decimal(".10")
LATHE = "CNC-LATHE-2000"


class Product(NamedTuple):
    name: str
    list_price: Decimal
    cost_price: Decimal


# dealflow's catalogue (models/seed.py): code, name and list price; costs are made up.
PRODUCTS = {
    LATHE: Product("CNC lathe GL-2000, 2 m bed", Decimal("48500"), Decimal("34000")),
    "TOOL-KIT-PRO": Product("Tooling kit, professional (42 pieces)", Decimal("2450"), Decimal("1500")),
    "CHUCK-3J-250": Product("Three-jaw chuck, 250 mm", Decimal("1850"), Decimal("1100")),
    "COOLANT-20L": Product("Semi-synthetic coolant, 20 l", Decimal("89.90"), Decimal("50")),
}

# The scenario's estimate revisions: (code, quantity, discount %).
REVISION_1 = [(LATHE, 2, Decimal("5")), ("TOOL-KIT-PRO", 2, Decimal("0")), ("CHUCK-3J-250", 2, Decimal("0"))]
REVISION_2 = [(LATHE, 3, Decimal("8")), ("TOOL-KIT-PRO", 3, Decimal("0")), ("CHUCK-3J-250", 3, Decimal("0")),
              ("COOLANT-20L", 10, Decimal("0"))]
FIRST_SHIPMENT = {LATHE: 2, "TOOL-KIT-PRO": 2, "CHUCK-3J-250": 2, "COOLANT-20L": 10}
SECOND_SHIPMENT = {LATHE: 1, "TOOL-KIT-PRO": 1, "CHUCK-3J-250": 1}
CUSTOMER_PO = "PO 4500-2231"
BUDGET = Decimal("150000")
FIRST_PAYMENT_SHARE = Decimal("0.4")

# The QA checklist, as dealflow's (dealflow/scenario.py ALL_CHECKS_PASS): each check must be True.
CHECKS = {
    "spindle_runout": "Spindle runout within tolerance",
    "safety_guards": "Safety guards fitted",
    "emergency_stop": "Emergency stop works",
    "hydraulics": "Hydraulic pressure holds under load",
    "control_software": "Control software up to date",
}
ALL_CHECKS_PASS = dict.fromkeys(CHECKS, True)
HYDRAULICS_FAIL = {**ALL_CHECKS_PASS, "hydraulics": False}


def unit_price(code: str, discount_pct: Decimal) -> Decimal:
    return (PRODUCTS[code].list_price * (1 - discount_pct / 100)).quantize(Decimal("0.0001"))


def expected_total(lines: list[tuple[str, int, Decimal]]) -> Decimal:
    untaxed = sum(unit_price(code, discount) * quantity for code, quantity, discount in lines)
    return (untaxed * (1 + TAX_RATE)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def configure_trytond(folder: str) -> None:
    """Point trytond at a SQLite database file in `folder`; must run before trytond is imported."""
    os.environ["TRYTOND_DATABASE__URI"] = "sqlite://"
    os.environ["TRYTOND_DATABASE__PATH"] = folder
    os.environ["DB_NAME"] = DB_NAME


def create_database():
    """A fresh database with the modules activated; returns the proteus configuration.

    Tryton's scenario helpers live in the modules' test packages, and importing them switches the
    pool to test mode (test models registered, extra validation of function fields). It is
    switched back before the pool is loaded, so the deals run as in production.
    """
    from proteus import Model, Wizard
    from proteus import config as proteus_config
    from trytond.pool import Pool
    from trytond.tests.test_tryton import create_db

    Pool.test = False
    create_db(DB_NAME)
    config = proteus_config.set_trytond(DB_NAME)
    Module = Model.get("ir.module")
    modules = Module.find([("name", "in", MODULES)])
    assert len(modules) == len(MODULES)
    Module.click(modules, "activate")
    Wizard("ir.module.activate_upgrade").execute("upgrade")
    return config


def set_up_company(config):
    """Company (USD), chart of accounts, fiscal year, cash payment method, the sales team."""
    from proteus import Model
    from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, create_tax, get_accounts
    from trytond.modules.account_invoice.tests.tools import (
        create_payment_term,
        set_fiscalyear_invoice_sequences,
    )
    from trytond.modules.company.tests.tools import create_company
    from trytond.tests.tools import set_user

    create_company(currency="USD", config=config)
    create_chart(config=config)
    fiscalyear = set_fiscalyear_invoice_sequences(create_fiscalyear(config=config), config=config)
    fiscalyear.click("create_period")
    accounts = get_accounts(config=config)

    Journal = Model.get("account.journal")
    PaymentMethod = Model.get("account.invoice.payment.method")
    cash_journal, = Journal.find([("type", "=", "cash")])
    payment_method = PaymentMethod(
        name="Cash", journal=cash_journal,
        credit_account=accounts["cash"], debit_account=accounts["cash"])
    payment_method.save()

    tax = create_tax(TAX_RATE, config=config)
    tax.save()
    payment_term = create_payment_term(config=config)
    payment_term.save()

    Party = Model.get("party.party")
    Employee = Model.get("company.employee")
    User = Model.get("res.user")
    employees = {}
    for handle, name in [("sofia", "Sofia (sales)"), ("mark", "Mark Henry (sales engineer)")]:
        party = Party(name=name)
        party.save()
        employees[handle] = Employee(party=party)
        employees[handle].save()
    user = User(config.user)
    user.employees.extend(employees.values())
    user.employee = employees["sofia"]
    user.save()
    set_user(user.id, config=config)

    return {
        "accounts": accounts, "tax": tax, "payment_term": payment_term,
        "payment_method": payment_method, "employees": employees}


def set_up_catalogue(config, company: dict, deals: int) -> dict:
    """The customer, the four products with stock for `deals` deals, and the lathe's quality control."""
    from proteus import Model

    Party = Model.get("party.party")
    customer = Party(name="Riverside Metalworks Ltd")
    customer.save()

    ProductCategory = Model.get("product.category")
    category = ProductCategory(name="Machines and tooling", accounting=True)
    category.account_revenue = company["accounts"]["revenue"]
    category.account_expense = company["accounts"]["expense"]
    category.customer_taxes.append(company["tax"])
    category.save()

    ProductUom = Model.get("product.uom")
    ProductTemplate = Model.get("product.template")
    unit, = ProductUom.find([("name", "=", "Unit")])
    products = {}
    for code, product in PRODUCTS.items():
        template = ProductTemplate(
            name=product.name, code=code, type="goods", default_uom=unit, salable=True,
            list_price=product.list_price, cost_price=product.cost_price, account_category=category)
        template.save()
        products[code], = template.products

    Location = Model.get("stock.location")
    Inventory = Model.get("stock.inventory")
    warehouse, = Location.find([("type", "=", "warehouse")])
    inventory = Inventory(location=warehouse.storage_location)
    for code, product in products.items():
        needed = max(q for c, q, _ in REVISION_2 if c == code) * deals
        inventory.lines.new(product=product, quantity=needed + 10, expected_quantity=0)
    inventory.click("confirm")
    assert inventory.state == "done"

    Control = Model.get("quality.control")
    control = Control(name="Lathe release test", product=products[LATHE])
    control.operations = ["stock.shipment.out:pick"]
    for name, string in CHECKS.items():
        control.points.new(name=name, string=string, type_="boolean")
    control.save()

    return {"customer": customer, "products": products, "warehouse": warehouse, "control": control}


def on_hand(config, catalogue: dict) -> dict[str, float]:
    """Each product's quantity in the warehouse, by code."""
    from proteus import Model

    Product = Model.get("product.product")
    ids = [p.id for p in catalogue["products"].values()]
    with config.set_context(locations=[catalogue["warehouse"].id]):
        return {p.code: p.quantity for p in Product.find([("id", "in", ids)])}


def set_lines(sale, lines: list[tuple[str, int, Decimal]], products: dict) -> None:
    """The sale's lines as `lines` say: existing lines changed, missing ones added (a draft sale)."""
    by_code = {line.product.code: line for line in sale.lines}
    for code, quantity, discount in lines:
        line = by_code.get(code)
        if line is None:
            line = sale.lines.new()
            line.product = products[code]  # set on the line, not in new(), so its taxes are found
        line.quantity = quantity
        line.unit_price = unit_price(code, discount)  # after the quantity, whose on_change resets it
    sale.save()


def inspect(wizard, checklist: dict[str, bool]) -> None:
    """The QA engineer fills in the inspection the pick asked for."""
    wizard.form.points = dict(checklist)
    wizard.execute("save")
    assert wizard.state == wizard.end_state, wizard.state


def assign(shipment, sent: dict[str, float]) -> None:
    """A waiting customer shipment made to send only `sent`, and its stock reserved.

    Tryton's partial shipment: the inventory moves (storage to output) lowered to what is sent;
    picking brings the outgoing moves down to them, and once the shipment is done the sale
    creates a new shipment for what is left.
    """
    assert shipment.state == "waiting", shipment.state
    for move in shipment.inventory_moves:
        if move.quantity != sent[move.product.code]:
            move.quantity = sent[move.product.code]
    shipment.click("assign_try")
    assert shipment.state == "assigned", shipment.state


def send(shipment, sent: dict[str, float]) -> None:
    """An assigned customer shipment, its lathe's inspection passed, picked, packed and done."""
    shipment.click("pick")
    assert shipment.state == "picked", shipment.state
    shipment.click("pack")
    shipment.click("do")
    assert shipment.state == "done", shipment.state
    assert {m.product.code: m.quantity for m in shipment.outgoing_moves} == sent


def pay(invoice, amount: Decimal, payment_method) -> None:
    """Finance records a payment of `amount` with the invoice's pay wizard."""
    wizard = invoice.click("pay")
    wizard.form.payment_method = payment_method
    wizard.form.amount = amount
    wizard.execute("choice")
    if wizard.state != wizard.end_state:  # less than the amount to pay: Tryton asks, partial payment
        assert wizard.form_state == "ask", wizard.form_state
        assert wizard.form.type == "partial", wizard.form.type
        wizard.execute("pay")
    assert wizard.state == wizard.end_state, wizard.state
    invoice.reload()


def qualify_and_hand_off(company: dict, catalogue: dict, i: int):
    """1. The lead, qualified to an opportunity by Sofia, handed off to Mark, the sales engineer."""
    from proteus import Model

    customer = catalogue["customer"]
    opportunity = Model.get("sale.opportunity")(description=f"CNC lathes for the new plant #{i}")
    opportunity.save()
    assert opportunity.state == "lead"
    opportunity.party = customer
    opportunity.address, = customer.addresses
    opportunity.payment_term = company["payment_term"]
    opportunity.employee = company["employees"]["sofia"]
    opportunity.amount = BUDGET
    opportunity.click("opportunity")
    assert opportunity.state == "opportunity", opportunity.state
    opportunity.employee = company["employees"]["mark"]
    opportunity.save()
    assert opportunity.employee == company["employees"]["mark"]
    return opportunity


def estimate(opportunity, catalogue: dict):
    """2. Revision 1: the opportunity's lines converted to a sale, the lathe discounted, quoted."""
    products = catalogue["products"]
    for code, quantity, _ in REVISION_1:
        opportunity.lines.new(product=products[code], quantity=quantity)
    opportunity.save()
    sale, = opportunity.click("convert")
    assert opportunity.state == "converted", opportunity.state
    set_lines(sale, REVISION_1, products)
    sale.click("quote")
    assert sale.state == "quotation", sale.state
    assert sale.total_amount == expected_total(REVISION_1), sale.total_amount
    return sale


def revise_and_approve(sale, catalogue: dict) -> None:
    """3. Revision 2 as the customer asked, quoted; approved with the PO number, confirmed."""
    sale.click("draft")
    assert sale.state == "draft", sale.state
    set_lines(sale, REVISION_2, catalogue["products"])
    sale.click("quote")
    assert sale.state == "quotation", sale.state
    assert sale.total_amount == expected_total(REVISION_2), sale.total_amount
    sale.reference = CUSTOMER_PO
    sale.click("confirm")
    assert sale.state == "processing", sale.state
    assert sale.reference == CUSTOMER_PO


def first_shipment_after_qa(sale, catalogue: dict) -> None:
    """4 and the first half of 5. The lathes fail QA, are fixed, pass; the first part is sent."""
    from proteus import Model
    from trytond.modules.quality.exceptions import InspectionError

    shipment, = sale.shipments
    assign(shipment, FIRST_SHIPMENT)

    # The first inspection: hydraulics fail; Tryton opens an alert and refuses the pick.
    inspect(shipment.click("pick"), HYDRAULICS_FAIL)
    failed, = shipment.quality_inspections
    assert failed.state == "failed", failed.state
    alert, = failed.alerts
    assert alert.state == "open", alert.state
    try:
        shipment.click("pick")
    except InspectionError:
        pass
    else:
        raise AssertionError("a failed inspection should block the pick")
    assert shipment.state == "assigned", shipment.state

    # The fix recorded on the alert, then the second inspection, which passes.
    alert.description = "Lathe #2: hydraulic pressure drops under load; seal replaced."
    alert.click("process")
    alert.click("resolve")
    assert alert.state == "resolved", alert.state
    retest = Model.get("quality.inspection")(
        control=catalogue["control"], origin=shipment, points=ALL_CHECKS_PASS,
        reference="Seal replaced; 4 h run under load")
    retest.click("process")
    assert retest.state == "passed", retest.state
    shipment.reload()
    assert sorted(i.state for i in shipment.quality_inspections) == ["failed", "passed"]

    send(shipment, FIRST_SHIPMENT)


def second_shipment(sale) -> None:
    """The second half of 5. The rest, in the shipment the sale created; its lathe inspected."""
    sale.reload()
    assert len(sale.shipments) == 2, len(sale.shipments)
    shipment, = [s for s in sale.shipments if s.state == "waiting"]
    assert {m.product.code: m.quantity for m in shipment.inventory_moves} == SECOND_SHIPMENT
    assign(shipment, SECOND_SHIPMENT)
    inspect(shipment.click("pick"), ALL_CHECKS_PASS)
    inspection, = shipment.quality_inspections
    assert inspection.state == "passed", inspection.state
    send(shipment, SECOND_SHIPMENT)


def one_deal(config, company: dict, catalogue: dict, i: int) -> None:
    """One complete lead-to-cash deal, the Glocial scenario's, asserting each step's outcome."""
    stock = on_hand(config, catalogue)

    # 1. The lead, qualified and handed off.
    opportunity = qualify_and_hand_off(company, catalogue, i)

    # 2. Estimate revision 1, quoted.
    sale = estimate(opportunity, catalogue)

    # 3. Revision 2, quoted, approved with the PO number and confirmed: shipment and invoice created.
    revise_and_approve(sale, catalogue)
    invoice, = sale.invoices
    total = expected_total(REVISION_2)
    assert invoice.total_amount == total, invoice.total_amount

    # 4 and 5. QA fails, then passes; the first part shipped; stock down by what was sent.
    first_shipment_after_qa(sale, catalogue)
    stock = {code: quantity - FIRST_SHIPMENT.get(code, 0) for code, quantity in stock.items()}
    assert on_hand(config, catalogue) == stock

    # 5. The rest shipped.
    second_shipment(sale)
    stock = {code: quantity - SECOND_SHIPMENT.get(code, 0) for code, quantity in stock.items()}
    assert on_hand(config, catalogue) == stock

    # 6. The invoice posted, then paid: 40% first, then the rest.
    invoice.reload()
    invoice.click("post")
    assert invoice.state == "posted", invoice.state
    first = (total * FIRST_PAYMENT_SHARE).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    pay(invoice, first, company["payment_method"])
    assert invoice.state == "posted", invoice.state
    assert invoice.amount_to_pay == total - first, invoice.amount_to_pay
    pay(invoice, total - first, company["payment_method"])
    assert invoice.state == "paid", invoice.state
    sale.reload()
    assert sale.state == "done", sale.state
    opportunity.reload()
    assert opportunity.state == "won", opportunity.state


def run(deals: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="tryton-deal-") as folder:
        configure_trytond(folder)
        config = create_database()
        company = set_up_company(config)
        catalogue = set_up_catalogue(config, company, deals)
        wall, cpu = [], []
        for i in range(1, deals + 1):
            w0, c0 = time.perf_counter(), time.process_time()
            one_deal(config, company, catalogue, i)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
            print(f"deal {i}: wall {wall[-1]:.3f} s, cpu {cpu[-1]:.3f} s", flush=True)
    return summarise(wall, cpu)


def summarise(wall: list[float], cpu: list[float]) -> dict:
    import trytond

    result = {
        "tool": "tryton", "version": trytond.__version__, "backend": "sqlite",
        "python": platform.python_version(), "deals": len(wall),
        "wall": wall, "cpu": cpu,
        "mean_wall": statistics.mean(wall), "median_wall": statistics.median(wall),
        "mean_cpu": statistics.mean(cpu), "median_cpu": statistics.median(cpu),
        "first_wall": wall[0], "first_cpu": cpu[0],
    }
    if len(wall) > 1:
        result["rest_mean_wall"] = statistics.mean(wall[1:])
        result["rest_mean_cpu"] = statistics.mean(cpu[1:])
    return result


def report(result: dict) -> None:
    print(f"mean   wall {result['mean_wall']:.3f} s, cpu {result['mean_cpu']:.3f} s")
    print(f"median wall {result['median_wall']:.3f} s, cpu {result['median_cpu']:.3f} s")
    print(f"first deal       wall {result['first_wall']:.3f} s, cpu {result['first_cpu']:.3f} s")
    if "rest_mean_wall" in result:
        print(f"rest (mean of {result['deals'] - 1}) wall {result['rest_mean_wall']:.3f} s, "
              f"cpu {result['rest_mean_cpu']:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deals", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="last line: the results as JSON")
    args = parser.parse_args()
    if args.deals < 1:
        parser.error("--deals must be at least 1")

    from importlib.metadata import version

    print(f"Tryton {version('trytond')} (sale {version('trytond_sale')}), backend SQLite "
          f"{sqlite3.sqlite_version} file, {args.deals} deals, Python {platform.python_version()} "
          f"({sys.executable})", flush=True)
    result = run(args.deals)
    report(result)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
