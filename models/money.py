"""Money is Decimal, rounded half up to the currency's minor unit: round each line, then sum."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import ValidationError
from .text import shown

# ISO 4217 minor units where they are not 2: amounts are kept to 2 decimals, so the three-decimal
# currencies (BHD, IQD, JOD, KWD, LYD, OMR, TND) are refused for a customer (models.customers)
MINOR_UNITS = {c: 0 for c in ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
                              "VUV", "XAF", "XOF", "XPF")} | {c: 3 for c in ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR",
                                                                            "TND")}
DEFAULT_CURRENCY = "USD"
# ISO 4217 currencies in use (codes for funds, metals and testing left out)
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF
CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD
HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD
MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY
TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWG""".split())
ZERO = Decimal("0")


def quantum(currency: str = DEFAULT_CURRENCY) -> Decimal:
    return Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))


def round_money(amount: Decimal, currency: str = DEFAULT_CURRENCY) -> Decimal:
    return Decimal(amount).quantize(quantum(currency), rounding=ROUND_HALF_UP)


def total(amounts: Iterable[Decimal], currency: str = DEFAULT_CURRENCY) -> Decimal:
    return round_money(sum(amounts, ZERO), currency)


LIMIT = Decimal("1000000000000")  # Numeric(14, 2) holds 12 digits before the point


def parse_money(value: object, field: str, places: int = 2) -> Decimal:
    """A user-given amount: a number below 10^12 with at most ``places`` decimals
    (10.000 is fine, 10.005 is not), never a float's noise."""
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(field, f"must be a number, got {shown(value)}") from None
    if not amount.is_finite():
        raise ValidationError(field, f"must be a finite number, got {shown(value)}")
    if abs(amount) >= LIMIT:
        raise ValidationError(field, f"must be less than {LIMIT:,}")
    exact = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if exact != amount:
        raise ValidationError(field, f"must have at most {places} decimals, got {value}")
    return exact


def amount_text(amount: Decimal | str, currency: str) -> str:
    """An amount as a person reads it in text (forms, the command line): rounded to its currency,
    with separators and the currency after it: '48,500.00 USD', '7,280,000 JPY'."""
    return f"{round_money(Decimal(str(amount)), currency):,} {currency}"
