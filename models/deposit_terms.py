"""A customer's deposit terms: the share of the order (0 to 100 %) and the stage it is paid
before (shipping, or QA and release), their rules and how they read. Their own module, without
the company or the invoices, so that the company, the customer and the order can hold terms
(``models.deposits`` is what the terms make: the deposit invoice and its deduction)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .errors import ValidationError
from .money import ZERO
from .text import shown

# what becomes of a deposit paid on a cancelled order: refunded, or kept as the customer's credit
# (here, without SQLAlchemy: the command line offers them as choices)
SETTLEMENTS = ("refund", "credit")

DEPOSIT_BEFORE = ("shipping", "release")  # shipping: before the first shipment; release: before QA releases it
BEFORE_WORDS = {"shipping": "before shipping", "release": "before QA and release"}


def deposit_pct(value: object, field: str = "deposit") -> Decimal:
    """A deposit percentage: 0 (none) to 100, at most two decimals ("30", "30 %", "12.5")."""
    text = "" if value is None else str(value).strip().removesuffix("%").strip()
    try:
        pct = Decimal(text)
    except ArithmeticError:
        raise ValidationError(field, f"must be a percentage from 0 to 100, got {shown(value)}") from None
    if not pct.is_finite() or not ZERO <= pct <= 100:
        raise ValidationError(field, f"must be a percentage from 0 to 100, got {shown(value)}")
    if pct != pct.quantize(Decimal("0.01")):
        raise ValidationError(field, f"must have at most 2 decimals, got {shown(value)}")
    return pct.quantize(Decimal("0.01"))


def deposit_before(value: object, field: str = "deposit_before") -> str:
    text = "" if value is None else str(value).strip().lower()
    text = {"before shipping": "shipping", "ship": "shipping", "before release": "release", "qa": "release"}.get(
        text, text)
    if text not in DEPOSIT_BEFORE:
        raise ValidationError(field, f"must be shipping (paid before the first shipment) or release (paid before "
                                     f"QA releases it), got {shown(value)}")
    return text


@dataclass(frozen=True)
class DepositTerms:
    pct: Decimal  # 0: no deposit
    before: str  # "shipping" or "release"

    @property
    def asked(self) -> bool:
        return self.pct > ZERO

    def words(self) -> str:
        if not self.asked:
            return "no deposit"
        return f"{format(self.pct.normalize(), 'f')} % deposit {BEFORE_WORDS[self.before]}"
