"""The life of a deal, one name for the doors (the flow's tasks, the CLI, the portal, the demo).

Where each part lives:
- ``models.plan``: where a deal stands (``next_step``, an ordered table of steps) and whose turn it is;
- ``models.waits``: the human steps, one module per kind (fields, description, rule, reminder);
- ``models.answering``: opening a wait, proving and applying an answer, refusing one;
- ``models.stages``: the automatic steps (convert, send the estimate, order, receipt, invoice, close).
"""

from __future__ import annotations

from .answering import (  # noqa: F401 - the doors' names
    AnswerCheck,
    answer_wait,
    apply_answer,
    attach_flow_run,
    find_open_wait,
    locked_wait,
    open_wait,
    prove_answer,
    record_refused_attempt,
    refuse_answer,
    staff_by_handle,
    start_deal,
)
from .plan import PLAN, Step, next_step, whose_turn  # noqa: F401
from .sending import SYSTEM  # noqa: F401
from .stages import (  # noqa: F401
    PAYMENT_TERMS_DAYS,
    close_deal,
    convert_lead,
    create_deposit_invoice,
    create_invoice,
    create_order,
    create_receipt,
    send_estimate,
)
from .waits import KINDS, WAIT_STEPS, describe_wait, form_start, read_answer  # noqa: F401

WAITS = KINDS  # the wait kinds by step name
normalized = read_answer
