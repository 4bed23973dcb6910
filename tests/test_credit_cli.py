"""A customer's money terms from the command line: a deposit and when it is due, a credit limit
(`customer edit`, the customer import), what `customer show` says of them (the terms, their own
or the company's, the exposure, the holds, the credit on account); the company's defaults
(`company edit`/`init`, `company show`); credit control's role (`staff add --role credit`). A bad
value (a deposit below 0 or over 100 %, a limit below zero, rubbish) is one line naming the field,
with nothing written."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dealflow.cli import main
from dealflow.scenario import play_direct

from .test_bad_input_cli import _audit_rows, _fingerprint
from .test_company import KANTO, KEN, fresh_db  # noqa: F401 - a database no one has set up

SETTINGS = settings(max_examples=int(os.environ.get("DEALFLOW_HYPOTHESIS_EXAMPLES", "25")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
RIVERSIDE = "priya.raman@riverside-metal.example"  # the demo's customer: 30 % before shipping, limit 250,000


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def shown(ref: str = RIVERSIDE) -> dict:
    result = run("customer", "show", ref, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- customer edit and show ---------------------------------------------------------------------

def test_a_customers_deposit_and_credit_limit_are_set_shown_and_given_back_to_the_company(db):
    assert [line for line in run("customer", "show", RIVERSIDE).stdout.splitlines()[-3:]] == [
        "  deposit    30 % deposit before shipping (their own terms)",
        "  credit     limit 250000.00 USD; exposure 0.00 USD (unpaid invoices 0.00, confirmed and not yet "
        "invoiced 0.00)",
        "  on account 0 USD of credit (from credit notes; finance uses it with the payment method 'credit on account')"]
    result = run("customer", "edit", RIVERSIDE, "--deposit", "12.5 %", "--deposit-before", "release",
                 "--credit-limit", "80,000")
    assert result.exit_code == 0, result.output
    assert result.stdout == ("customer 1 (Riverside Metalworks Ltd): deposit_pct 30.00 -> 12.50, deposit_before "
                             "shipping -> release, credit_limit 250000.00 -> 80000\n")
    got = shown()
    assert (got["deposit"], got["deposit_before"], got["credit_limit"]) == ("12.50", "release", "80000.00")
    assert got["deposit_terms"] == {"pct": "12.50", "before": "release", "words": "12.5 % deposit before QA and "
                                    "release", "own": True}
    assert run("company", "edit", "--deposit-pct", "10").exit_code == 0
    assert run("customer", "edit", RIVERSIDE, "--deposit", "default", "--deposit-before", "default",
               "--credit-limit", "none").exit_code == 0
    got = shown()
    assert got["deposit_terms"] == {"pct": "10.00", "before": "shipping", "words": "10 % deposit before shipping",
                                    "own": False}
    assert got["credit_limit"] == ""
    text = run("customer", "show", RIVERSIDE).stdout
    assert "  deposit    10 % deposit before shipping (the company’s terms)\n" in text
    assert "  credit     limit none; exposure 0.00 USD" in text
    assert run("customer", "edit", RIVERSIDE, "--deposit", "none").exit_code == 0  # none: no deposit at all
    assert shown()["deposit_terms"]["words"] == "no deposit" and shown()["deposit_terms"]["own"] is True


def test_customer_show_counts_the_exposure_and_lists_a_hold_and_its_decision(db, new_deal):
    play_direct(new_deal, until="payment-1")  # invoiced, the deposit paid, the rest unpaid
    got = shown()
    assert got["exposure"] == {"currency": "USD", "unpaid": "121928.58", "uninvoiced": "0.00", "total": "121928.58",
                               "overdue": []}
    # a second deal of theirs, accepted over a limit now set low: held for credit control
    from dealflow.scenario import start_scenario_deal

    assert run("customer", "edit", RIVERSIDE, "--credit-limit", "150000").exit_code == 0
    second = start_scenario_deal(restock=3)
    play_direct(second, until="credit-rev-2")
    got = shown()
    assert [(h["deal"], h["status"], h["decided_by"]) for h in got["credit_holds"]] == [(second, "open", None)]
    assert got["credit_holds"][0]["why"].startswith("exposure 121928.58 + this order 174183.68 = 296112.26 USD, "
                                                    "over the credit limit of 150000")
    text = run("customer", "show", RIVERSIDE).stdout
    assert f"  hold       {second}: exposure 121928.58 + this order" in text and "waiting for credit control" in text
    assert "  credit     limit 150000.00 USD; exposure 121928.58 USD (unpaid invoices 121928.58, confirmed and " \
           "not yet invoiced 0.00)" in text


def test_the_customer_import_takes_the_deposit_and_credit_columns_and_lists_every_bad_one(db, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("name,email,deposit,deposit_before,credit_limit\n"
                    "Alpha Tools,buy@alpha.example,25,release,50000\n"
                    "Beta Forge,buy@beta.example,,,\n", encoding="utf-8")
    result = run("customer", "import", str(path))
    assert result.exit_code == 0 and "2 added" in result.stdout, result.output
    alpha, beta = shown("buy@alpha.example"), shown("buy@beta.example")
    assert (alpha["deposit_terms"]["words"], alpha["credit_limit"]) == ("25 % deposit before QA and release",
                                                                         "50000.00")
    assert (beta["deposit_terms"]["own"], beta["credit_limit"]) == (False, "")  # empty: the company's, no limit
    path.write_text("name,email,deposit_pct,deposit_before,credit_limit\n"
                    "Alpha Tools,buy@alpha.example,120,later,-5\n", encoding="utf-8")
    before = _fingerprint()
    result = run("customer", "import", str(path))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: customers.csv: row 2, column deposit: must be a percentage from 0 to 100, got '120'",
        "error: customers.csv: row 2, column deposit_before: must be shipping (paid before the first shipment) or "
        "release (paid before QA releases it), got 'later'",
        "error: customers.csv: row 2, column credit_limit: must be an amount of 0 or more, or none (no limit); "
        "got '-5'",
        "error: customers.csv: 3 problem(s) in 1 of 1 rows; nothing was imported"]
    assert _fingerprint() == before
    helped = run("customer", "import", "--help").stdout
    assert "deposit (% of the order" in helped and "credit_limit" in helped


# --- the company's defaults, and credit control's role -------------------------------------------

def test_the_company_sets_the_default_deposit_and_how_late_an_invoice_may_be_and_shows_them(db):
    result = run("company", "edit", "--deposit-pct", "20", "--deposit-before", "release", "--credit-overdue-days", "45")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("changed: deposit_pct, deposit_before, credit_overdue_days\n")
    text = run("company", "show").stdout
    assert "deposit_pct          20.00\n" in text and "deposit_before       release\n" in text
    assert "credit_overdue_days  45" in text
    got = json.loads(run("company", "show", "--json").stdout)
    assert (got["deposit_pct"], got["deposit_before"], got["credit_overdue_days"]) == ("20.00", "release", 45)
    for args, message in [
        (["--deposit-pct", "101"], "error: deposit_pct: must be a percentage from 0 to 100, got '101'\n"),
        (["--deposit-before", "never"], "error: deposit_before: must be shipping (paid before the first shipment) "
                                        "or release (paid before QA releases it), got 'never'\n"),
        (["--credit-overdue-days", "-1"], "error: credit_overdue_days: must be a number of days from 0 to 365, "
                                          "got '-1'\n")]:
        before = _fingerprint()
        result = run("company", "edit", *args)
        assert (result.exit_code, result.stderr) == (2, message)
        assert _fingerprint() == before


def test_init_takes_the_companys_deposit_and_credit_terms_too(fresh_db):  # noqa: F811 - the fixture
    result = run("init", *KANTO, *KEN, "--deposit-pct", "30", "--deposit-before", "release",
                 "--credit-overdue-days", "14", "--json")
    assert result.exit_code == 0, result.output
    company = json.loads(result.stdout)["company"]
    assert (company["deposit_pct"], company["deposit_before"], company["credit_overdue_days"]) == (
        "30.00", "release", 14)
    assert json.loads(run("company", "show", "--json").stdout) == company


def test_credit_control_is_a_role_staff_can_be_given(db):
    result = run("staff", "add", "carla", "--name", "Carla Credit", "--email", "carla@glocial.example",
                 "--role", "credit")
    assert result.exit_code == 0, result.output
    assert "credit" in run("staff", "add", "--help").stdout
    [carla] = [p for p in json.loads(run("staff", "list", "--json").stdout) if p["handle"] == "carla"]
    assert carla["roles"] == ["credit"]
    assert run("deal", "list", "--waiting-for", "credit").exit_code == 0


# --- bad values, generated: one line naming the field, nothing written ------------------------------

NUMBER = st.decimals(allow_nan=False, allow_infinity=False, places=2)
BAD_DEPOSIT = st.one_of(
    NUMBER.filter(lambda d: d < 0), NUMBER.filter(lambda d: d > 100), st.just("100.01"), st.just("-0.01"),
    st.just("12.345"), st.just("NaN"), st.just("Infinity"), st.just("1e3"), st.just("30 percent"),
    st.text(alphabet="abcxyz%$#!?", min_size=1, max_size=10).filter(lambda t: t.strip().lower() not in (
        "none", "default", "company", "%"))).map(str)
BAD_LIMIT = st.one_of(
    NUMBER.filter(lambda d: d < 0), st.just("-0.01"), st.just("1e12"), st.just("0.001"), st.just("NaN"),
    st.just("-Infinity"), st.just("ten thousand"),
    st.text(alphabet="abcxyz$#!?", min_size=1, max_size=10).filter(
        lambda t: t.strip().lower() not in ("none", "no limit", "unlimited"))).map(str)
BAD_BEFORE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=12).filter(
    lambda t: t.strip().lower() not in ("shipping", "release", "ship", "qa", "before shipping", "before release",
                                        "default", "company"))


def _refused_naming(args: list[str], field: str) -> None:
    before, audit_before = _fingerprint(), _audit_rows()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (args, result.output)
    lines = result.stderr.splitlines()
    assert result.stdout == "" and len(lines) == 1 and lines[0].startswith(f"error: {field}: "), (args, result.stderr)
    assert (_fingerprint(), _audit_rows()) == (before, audit_before), args


@SETTINGS
@given(option=st.sampled_from(["--deposit", "--credit-limit", "--deposit-before"]), data=st.data())
def test_customer_edit_refuses_a_bad_deposit_or_limit_in_one_line_naming_it(db, option, data):
    value = data.draw({"--deposit": BAD_DEPOSIT, "--credit-limit": BAD_LIMIT, "--deposit-before": BAD_BEFORE}[option])
    field = option.lstrip("-").replace("-", "_")
    _refused_naming(["customer", "edit", RIVERSIDE, option, value], field)


@SETTINGS
@given(option=st.sampled_from(["--deposit-pct", "--deposit-before"]), data=st.data())
def test_company_edit_refuses_a_bad_default_deposit_in_one_line_naming_it(db, option, data):
    value = data.draw({"--deposit-pct": BAD_DEPOSIT, "--deposit-before": BAD_BEFORE}[option])
    _refused_naming(["company", "edit", option, value], option.lstrip("-").replace("-", "_"))


def test_a_new_currency_asks_for_the_credit_limit_again_in_it(db):
    """A limit is an amount in the customer's currency: changing the currency alone would turn USD
    250,000 into JPY 250,000, so it is refused, naming the limit, until the limit is given with it."""
    before = _fingerprint()
    result = run("customer", "edit", RIVERSIDE, "--currency", "JPY")
    assert result.exit_code != 0
    assert result.output == ("error: credit_limit: is 250000.00 in the company currency: give it again in JPY with "
                             "the new currency (or none)\n")
    assert _fingerprint() == before
    result = run("customer", "edit", RIVERSIDE, "--currency", "JPY", "--credit-limit", "37000000")
    assert result.exit_code == 0, result.output
    got = shown()
    assert (got["currency"], got["credit_limit"]) == ("JPY", "37000000.00")


def test_the_inbox_says_what_each_deal_waits_for_in_words(new_deal):
    play_direct(new_deal, until="deposit-1")
    result = run("inbox")
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()[:2]
    assert header.split()[:5] == ["DEAL", "CUSTOMER", "STEP", "WAITING", "FOR"]
    assert "deposit-1" in row and "deposit, by finance" in row
    [waiting] = json.loads(run("inbox", "--json").stdout)
    assert (waiting["step"], waiting["waiting_for"], waiting["amount"]) == ("deposit", "deposit, by finance",
                                                                           "52255.10")
