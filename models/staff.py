"""Staff accounts and their roles. Every human step names the role that may take it.

A person may hold several roles (``roles``, comma separated). A manager may stand in for any
role; that is recorded as standing in (``stands_in_for``). An account is *enrolled* once it has
a TOTP secret (RFC 6238: 30 s, 6 digits), kept encrypted (``totp_secret`` is a Fernet token,
never the secret itself). Which code a person used last (``totp_last_step``) makes each code
good for one answer only.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Numeric, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base
from .errors import PermissionDenied, ValidationError
from .roles import ROLES, Role
from .staff_sessions import close_sessions
from .text import one_line, shown

DEFAULT_DISCOUNT_LIMIT = Decimal(10)  # % on a line, for everyone but managers, unless set per person
HANDLE = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")
EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    handle: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(200))
    roles: Mapped[str] = mapped_column(String(200))  # comma separated, e.g. "sales_rep,sales_engineer"
    active: Mapped[bool] = mapped_column(default=True)
    totp_secret: Mapped[str | None] = mapped_column(Text)  # encrypted (Fernet token); None: not enrolled
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # the time step of the last code used
    enrolled_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]  # after too many wrong codes
    locks_in_row: Mapped[int] = mapped_column(default=0, server_default="0")  # each next lock doubles
    # the largest discount this person may give on an estimate line without a manager's approval;
    # None: the role's default (``DEFAULT_DISCOUNT_LIMIT``, none for a manager); 100: no limit
    discount_limit_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))

    @property
    def role_list(self) -> list[str]:
        return [r for r in self.roles.split(",") if r]

    @property
    def role(self) -> str:
        """The roles as people read them: 'qa' or 'sales_rep, sales_engineer'."""
        return ", ".join(self.role_list)

    @property
    def discount_limit(self) -> Decimal | None:
        """The largest line discount this person gives without a manager's approval (None: no limit)."""
        if self.discount_limit_pct is not None:
            return None if self.discount_limit_pct >= 100 else self.discount_limit_pct
        return None if self.holds(Role.MANAGER) else DEFAULT_DISCOUNT_LIMIT

    def set_discount_limit(self, value: str | Decimal | None) -> None:
        """A limit in percent (0 to 100; 100: none), or None/"default" for the role's default."""
        if value is None or str(value).strip().lower() == "default":
            self.discount_limit_pct = None
            return
        text = str(value).strip().lower()
        if text in ("none", "unlimited"):
            self.discount_limit_pct = Decimal(100)
            return
        try:
            pct = Decimal(text.rstrip("%").strip())
        except ArithmeticError:
            raise ValidationError("discount", f"must be a percentage from 0 to 100, 'unlimited' or 'default', "
                                              f"got {shown(value)}") from None
        if not pct.is_finite() or not 0 <= pct <= 100 or pct != round(pct, 2):
            raise ValidationError("discount", f"must be a percentage from 0 to 100 with at most 2 decimals, got "
                                              f"{shown(value)}")
        self.discount_limit_pct = pct

    @property
    def enrolled(self) -> bool:
        return self.totp_secret is not None

    def holds(self, role: Role | str) -> bool:
        """Has this role itself (not by standing in)."""
        return str(role) in self.role_list

    def has_role(self, role: Role | str) -> bool:
        # A manager may stand in for anyone: that is what managers are asked to do.
        return self.active and (self.holds(role) or self.holds(Role.MANAGER))

    def stands_in_for(self, roles: list[str] | tuple[str, ...]) -> str | None:
        """The roles this person answers for as a stand-in (a manager without them), or None."""
        if any(self.holds(r) for r in roles):
            return None
        return " or ".join(roles) if self.holds(Role.MANAGER) else None

    def require_role(self, role: Role | str, step: str) -> None:
        if not self.has_role(role):
            raise PermissionDenied(self.handle, str(role), step, has=self.role)


# --- managing accounts (the rules behind `dealflow staff …`) ------------------------------------

def check_handle(value: object, field: str = "handle") -> str:
    handle = one_line(value, field, 40, required=True)
    if not HANDLE.fullmatch(handle):
        raise ValidationError(field, f"{shown(handle)} is not a handle: 1-40 lower-case letters, digits, "
                                     f"'.', '_' or '-', starting with a letter or digit")
    return handle


def check_email(value: object, field: str = "email") -> str:
    email = one_line(value, field, 200, required=True)
    if not EMAIL.fullmatch(email):
        raise ValidationError(field, f"{shown(email)} is not an e-mail address (name@example.com)")
    return email


def check_roles(values: object, field: str = "role") -> str:
    """'qa' or 'sales_rep,sales_engineer' or a list of them: the roles, checked, comma joined."""
    items = values if isinstance(values, list | tuple) else [values]
    roles: list[str] = []
    for item in items:
        for part in str(item or "").split(","):
            part = part.strip().lower()
            if not part:
                continue
            if part not in ROLES:
                raise ValidationError(field, f"{shown(part)} is not a role; roles are {', '.join(ROLES)}")
            if part not in roles:
                roles.append(part)
    if not roles:
        raise ValidationError(field, f"give at least one role ({', '.join(ROLES)})")
    return ",".join(roles)


def staff_member(session: Session, handle: str, field: str = "handle", *, lock: bool = False) -> StaffUser:
    """The account with this handle; with ``lock``, its row locked until the transaction ends (two
    answers by one person, e.g. with the same code, are then checked one after the other)."""
    handle = one_line(handle, field, 40, required=True)
    query = select(StaffUser).where(StaffUser.handle == handle)
    if lock:  # FOR NO KEY UPDATE: a row that merely refers to the person (a shipment's shipped_by,
        # taken in another deal's transaction) is not blocked by it, so no deadlock with stock locks
        query = query.with_for_update(key_share=True).execution_options(populate_existing=True)
    person = session.scalars(query).one_or_none()
    if person is None:
        raise ValidationError(field, f"no staff member with handle {handle!r}")
    return person


def add_staff(session: Session, handle: str, name: str, email: str, roles: object) -> StaffUser:
    handle = check_handle(handle)
    person = StaffUser(handle=handle, name=one_line(name, "name", 120, required=True),
                       email=check_email(email), roles=check_roles(roles), active=True)
    if session.scalars(select(StaffUser.id).where(StaffUser.handle == handle)).first() is not None:
        raise ValidationError("handle", f"{handle!r} is taken; choose another handle")
    session.add(person)
    session.flush()
    return person


def _other_managers(session: Session, person: StaffUser) -> int:
    return sum(1 for p in session.scalars(select(StaffUser).where(StaffUser.active, StaffUser.id != person.id))
               if p.holds(Role.MANAGER))


def set_roles(session: Session, person: StaffUser, roles: object) -> str:
    new = check_roles(roles)
    if person.holds(Role.MANAGER) and Role.MANAGER not in new.split(",") and person.active \
            and not _other_managers(session, person):
        raise ValidationError("role", f"{person.handle} is the last manager; make someone else a manager first")
    if new != person.roles:
        close_sessions(session, person, "roles changed")
    person.roles = new
    return new


def disable(session: Session, person: StaffUser) -> None:
    if person.active and person.holds(Role.MANAGER) and not _other_managers(session, person):
        raise ValidationError("handle", f"{person.handle} is the last enabled manager; "
                                        f"enable or add another manager first")
    close_sessions(session, person, "disabled")
    person.active = False


def enable(person: StaffUser) -> None:
    person.active = True
