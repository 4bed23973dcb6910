"""The domain's errors, one small tree. The CLI prints ``str(error)`` as one line; flows fail the task.

    DomainError
     ├── ValidationError      bad input: names the field and the rule it broke
     │    ├── OutOfStock      a shipment asks for more than is on hand
     │    ├── OverShipment    a shipment asks for more than is left to ship of a line
     │    ├── Overpayment     a payment larger than what is due
     │    ├── EstimateExpired an answer to an estimate past its validity
     │    ├── DuplicateLine   a product twice on one estimate or shipment
     │    ├── ProductRetired  a retired product on a new estimate
     │    ├── DiscountOutOfRange  a discount below 0 or above 100 %
     │    └── DiscountNeedsApproval  an estimate sent with a discount over its preparer's limit, unapproved
     ├── NotFound             no such record (kind and key)
     ├── InvalidTransition    a document's state does not allow the step
     ├── PermissionDenied     the person lacks the role the step needs
     ├── WaitNotOpen          an answer for a wait the deal is not at
     ├── DealAlreadyRunning   a second flow run for a deal whose run is still live
     └── FileRefused          an imported file with bad rows: every one of them, nothing written
"""

from __future__ import annotations


class DomainError(Exception):
    """A business rule said no. The message is for the person who tried."""


class ValidationError(DomainError):
    def __init__(self, field: str, rule: str):
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class OutOfStock(ValidationError):
    def __init__(self, sku: str, requested: int, available: int, field: str = "quantity"):
        self.sku = sku
        self.requested = requested
        self.available = available
        super().__init__(field, f"{sku}: {requested} requested but only {available} in stock")


class Overpayment(ValidationError):
    def __init__(self, amount, due, field: str = "amount"):
        self.amount = amount
        self.due = due
        super().__init__(field, f"{amount} is more than the {due} still due")


class OverShipment(ValidationError):
    def __init__(self, sku: str, requested: int, left: int, ordered: int, shipped: int, field: str = "quantity"):
        self.sku, self.requested, self.left = sku, requested, left
        super().__init__(field, f"{sku}: {requested} is more than the {left} left to ship "
                                f"({ordered} ordered, {shipped} shipped)")


class EstimateExpired(ValidationError):
    def __init__(self, number: str, valid_until, field: str = "decision"):
        self.number, self.valid_until = number, valid_until
        super().__init__(field, f"estimate {number} expired on {valid_until}")


class DuplicateLine(ValidationError):
    def __init__(self, sku: str, field: str, hint: str = ""):
        self.sku = sku
        super().__init__(field, f"{sku} appears twice{hint}")


class ProductRetired(ValidationError):
    def __init__(self, sku: str, field: str):
        self.sku = sku
        super().__init__(field, f"{sku} is retired: no longer offered in new estimates")


class DiscountOutOfRange(ValidationError):
    def __init__(self, field: str):
        super().__init__(field, "must be between 0 and 100")


class DiscountNeedsApproval(ValidationError):
    def __init__(self, number: str, asked, limit, field: str = "discount"):
        self.number, self.asked, self.limit = number, asked, limit
        super().__init__(field, f"{number} gives {asked} %, over its preparer's limit of {limit} %: "
                                "a sales manager must approve it first")


class NotFound(DomainError):
    def __init__(self, kind: str, key: object):
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!s} not found")


class InvalidTransition(DomainError):
    def __init__(self, document: str, state: str, step: str):
        self.document = document
        self.state = state
        self.step = step
        super().__init__(f"{document} is {state}: cannot {step}")


class PermissionDenied(DomainError):
    def __init__(self, person: str, needed: str, step: str, has: str | None = None):
        self.person = person
        self.needed = needed
        self.step = step
        who = f"{person} ({has})" if has else person
        super().__init__(f"by: {who} may not answer '{step}'; it needs the role {needed}")


class WaitNotOpen(DomainError):
    def __init__(self, deal: str, step: str, open_steps: list[str], why: str = ""):
        self.deal = deal
        self.step = step
        waiting = ", ".join(open_steps) if open_steps else "nothing"
        super().__init__(f"step: {deal} is not waiting for '{step}': {why}" if why else
                         f"step: {deal} is not waiting for '{step}' (it waits for: {waiting})")


class DealAlreadyRunning(DomainError):
    def __init__(self, deal: str, flow_run_id: str, state: str):
        self.deal, self.flow_run_id, self.state = deal, flow_run_id, state
        super().__init__(f"lead: deal {deal} already runs as flow run {flow_run_id} ({state}); "
                         f"answer its waits with `dealflow answer`")


class FileRefused(DomainError):
    """A file to import broke rules: ``problems`` lists each (row, column, rule), all at once; the
    row is the spreadsheet's (the header is row 1); 0 for the file as a whole."""

    def __init__(self, name: str, problems: list[tuple[int, str, str]], rows: int):
        self.name = name
        self.problems = problems
        self.rows = rows
        bad = len({row for row, _, _ in problems if row})
        super().__init__(f"{name}: {len(problems)} problem(s) in {bad} of {rows} rows; nothing was imported" if bad
                         else f"{name}: nothing was imported")

    @property
    def lines(self) -> list[str]:
        return [f"{self.name}: " + (f"row {row}, column {column}: {rule}" if row else f"{column}: {rule}")
                for row, column, rule in self.problems]
