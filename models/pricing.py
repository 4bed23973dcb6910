"""The arithmetic of a priced line, shared by estimate, order and invoice lines."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from .money import DEFAULT_CURRENCY, ZERO, round_money, total


class PricedLine:
    """Gross = quantity × unit price; discount and tax are rounded per line, then summed."""

    line_no: Mapped[int]
    sku: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal]
    discount_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=ZERO)
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=ZERO)

    @property
    def currency(self) -> str:
        """The currency of the deal the line's document belongs to: each amount rounds to its minor
        unit line by line (a yen line to whole yen)."""
        deal = self.deal_of_line()
        return deal.currency if deal is not None and deal.currency else DEFAULT_CURRENCY

    def deal_of_line(self):  # each kind of line knows its way to its deal
        return None

    def gross_for(self, quantity: int) -> Decimal:
        return round_money(self.unit_price * quantity, self.currency)

    def discount_for(self, quantity: int) -> Decimal:
        return round_money(self.gross_for(quantity) * self.discount_pct / 100, self.currency)

    def net_for(self, quantity: int) -> Decimal:
        return self.gross_for(quantity) - self.discount_for(quantity)

    def tax_for(self, quantity: int) -> Decimal:
        return round_money(self.net_for(quantity) * self.tax_rate / 100, self.currency)

    @property
    def gross(self) -> Decimal:
        return self.gross_for(self.quantity)

    @property
    def discount(self) -> Decimal:
        return self.discount_for(self.quantity)

    @property
    def net(self) -> Decimal:
        return self.net_for(self.quantity)

    @property
    def tax(self) -> Decimal:
        return self.tax_for(self.quantity)

    @property
    def line_total(self) -> Decimal:
        return self.net + self.tax


class Totals:
    """Totals of a document, always derived from its lines."""

    def __init__(self, lines, currency: str = DEFAULT_CURRENCY):
        lines = list(lines)
        self.subtotal = total((ln.gross for ln in lines), currency)
        self.discount = total((ln.discount for ln in lines), currency)
        self.net = total((ln.net for ln in lines), currency)
        self.tax = total((ln.tax for ln in lines), currency)
        self.total = self.net + self.tax

    def as_dict(self) -> dict[str, str]:
        return {k: str(getattr(self, k)) for k in ("subtotal", "discount", "net", "tax", "total")}
