"""One Jinja2 environment for every document and email: autoescaping on, StrictUndefined."""

from __future__ import annotations

import logging
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from models.money import round_money

from .config import PROJECT_ROOT, Settings, load_settings

TEMPLATES_DIR = PROJECT_ROOT / "templates"


def money(value: Any, currency: str | None = None) -> str:
    amount = round_money(Decimal(str(value)), currency or "USD")
    text = f"{amount:,}"
    return f"{currency} {text}" if currency else text


def amount(value: Any, currency: str | None = None, exact: bool = False) -> str:
    """An amount without its currency code, to the currency's minor unit (a yen line: 1,001, not
    1,001.00). ``exact``: a price keeps decimals beyond the minor unit (a unit price of 1,000.50 yen)."""
    value = Decimal(str(value))
    rounded = round_money(value, currency or "USD")
    return f"{value if exact and rounded != value else rounded:,}"


def pct(value: Any) -> str:
    return f"{Decimal(str(value)).normalize():f}%"


@lru_cache(maxsize=1)
def sentence(text: object) -> str:
    """A reason someone typed, as the end of a sentence: with its full stop (once)."""
    words = " ".join(str(text or "").split())
    return words if not words or words[-1] in ".!?…" else words + "."


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["amount"] = amount
    env.filters["pct"] = pct
    env.filters["sentence"] = sentence
    env.globals["portal_url"] = None  # an email's personal link, when render() is given one
    return env


def render(template: str, context: dict[str, Any], settings: Settings | None = None, **extra: Any) -> str:
    from .company import details

    settings = settings or load_settings()
    # a document keeps the seller it was made by (its context's "seller"); one made before that
    # was kept, and every email, shows the company as it is now
    seller = context.get("seller") if isinstance(context, dict) else None
    company = seller if isinstance(seller, dict) else details(settings)
    return environment().get_template(template).render(doc=context, company=company, **extra)


def render_pdf(html: str) -> bytes:
    """A printable PDF of a rendered document (WeasyPrint; fonts from the system)."""
    from weasyprint import HTML

    # Without libharfbuzz-subset WeasyPrint subsets fonts with fontTools and says so on every
    # document; the PDFs are right either way.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    return HTML(string=html, base_url=str(TEMPLATES_DIR)).write_pdf()


def render_email(template: str, context: dict[str, Any], settings: Settings | None = None,
                 portal_url: str | None = None) -> tuple[str, str]:
    """(plain text, html) of an email; ``template`` is a stem such as ``emails/estimate``;
    ``portal_url`` the customer's personal link, if the mail has one."""
    return (render(f"{template}.txt", context, settings, portal_url=portal_url),
            render(f"{template}.html", context, settings, portal_url=portal_url))
