"""What a human step of a deal is, declared once: ``WaitKind``.

A wait kind owns everything about one step that a person answers: when the deal is at it and
under which key, who may answer and who it is assigned to, the fields of its answer, what its
form says, starts with and offers, the rule that applies an answer, and the reminder that chases
it. Each kind is one module of this package; ``models.plan`` puts them in the deal's order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..choices import coded, in_words
from ..reminders import ReminderRule

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..deal import Deal
    from ..markdown import Markdown
    from ..staff import StaffUser


def _typed(session: Session, deal: Deal, typed: dict[str, Any] | None) -> dict[str, Any]:  # noqa: ARG001
    return typed or {}


def _nothing(session: Session, deal: Deal) -> dict[str, Any]:  # noqa: ARG001
    return {}


def _nobody(deal: Deal) -> str | None:  # noqa: ARG001
    return None


@dataclass(frozen=True)
class WaitKind:
    """One human step, whole:

    - ``name``: the step's name (``qualify``), in tags, the audit log and ``dealflow answer``;
    - ``title``: how people name it ("the customer's decision");
    - ``roles``: who may answer (a manager may stand in); ``waiting_for``: who the deal waits for,
      if not the first role (the customer); ``assignee``: the person it is assigned to, if one;
    - ``at``: whether the deal is at this step, asked in the plan's order (so it may take the
      earlier steps as done): the facts of the step (``{"revision": 2}``), or None;
    - ``key``: the wait's key from those facts (``estimate-rev-2``); a refused answer's retry
      adds ``-retry-N``;
    - ``fields``: the answer's fields, a plain pydantic model (``flows.inputs`` makes the Prefect
      form of it), with the choices it offers in words and the codes recorded for them;
    - ``describe``: what the person needs to decide, shown at the top of the form;
    - ``prefill``: what the form starts with (given what was typed in a refused answer, if any);
    - ``choices``: what the form offers to pick from, built from the deal when the wait opens;
    - ``answer``: the rule that applies an answer (raises a DomainError naming the field);
    - ``reminder``: the rule that chases the wait when it waits too long;
    - ``case``: for a step of a case that follows the sale (a return, a warranty claim: their own
      runs and plans, ``models.cases``), which; ``subject`` then finds that case from the deal and
      the wait's key, and the kind's ``at``, ``describe``, ``prefill``, ``choices`` and ``answer``
      are given the case instead of the deal."""
    name: str
    title: str
    roles: tuple[str, ...]
    at: Callable[[Deal], dict[str, Any] | None]
    key: Callable[[dict[str, Any]], str]
    fields: type[BaseModel]
    describe: Callable[[Session, Deal], Markdown]
    answer: Callable[[Session, Deal, StaffUser, dict[str, Any]], str]
    reminder: ReminderRule
    waiting_for: str | None = None
    assignee: Callable[[Deal], str | None] = _nobody
    prefill: Callable[[Session, Deal, dict[str, Any] | None], dict[str, Any]] = _typed
    choices: Callable[[Session, Deal], dict[str, Any]] = _nothing
    normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    case: str | None = None
    subject: Callable[[Session, Deal, str], Any] | None = None

    def of(self, session: Session, deal: Deal, key: str) -> Any:
        """What the kind's rules are about: the deal, or the case (a return, a claim) the wait ``key`` is of."""
        return self.subject(session, deal, key) if self.subject is not None else deal

    @property
    def words(self) -> dict[str, dict[str, str]]:
        """The choices its form offers in words, per field (``Fields.words``)."""
        return self.fields.words

    @property
    def turn(self) -> str:
        """Who the deal waits for at this step: a role, or the customer."""
        return self.waiting_for or self.roles[0]

    def read(self, answer: dict[str, Any]) -> dict[str, Any]:
        """An answer as every door reads it before it is checked: choices in words as their codes
        ('ask for changes' is request_changes), then the kind's own reading."""
        answer = coded(self.words, answer)
        return self.normalize(answer) if self.normalize else answer

    def as_offered(self, answer: dict[str, Any]) -> dict[str, Any]:
        """An answer's choices in the words its form offers (what the form's schema takes)."""
        return in_words(self.words, answer)
