"""The states of each entity are enums with their moves (``models.states``): the database's CHECK
constraints are made from them, a move the table lacks is refused, and the README's table is theirs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import Base
from models.errors import InvalidTransition
from models.states import MOVES, OF, Status, table

TABLES = {"leads": "LeadStatus", "deals": "DealStatus", "waits": "WaitStatus", "estimate_revisions": "RevisionStatus",
          "sales_orders": "OrderStatus", "invoices": "InvoiceStatus", "credit_holds": "HoldStatus",
          "serials": "SerialStatus", "returns": "ReturnStatus", "warranty_claims": "ClaimStatus",
          "emails": "EmailStatus"}


def test_every_status_column_checks_its_enum():
    by_name = {cls.__name__: cls for cls in MOVES}
    for name, enum in TABLES.items():
        checks = [c.sqltext.text for c in Base.metadata.tables[name].constraints if getattr(c, "sqltext", None) is not None
                  and "status in" in str(c.sqltext)]
        assert checks == [by_name[enum].check()], name
    assert set(MOVES) == set(OF) and len(MOVES) == len(TABLES)


def test_the_readme_shows_the_states_as_the_enums_say():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    listed = readme.split("<!-- states: begin -->\n", 1)[1].split("\n<!-- states: end -->", 1)[0]
    assert listed == table(), "README's table of states: paste models.states.table()"


@given(data=st.data())
def test_a_move_the_table_lacks_is_refused_naming_the_state(data):
    status: type[Status] = data.draw(st.sampled_from(list(MOVES)))
    current, to = data.draw(st.sampled_from(list(status))), data.draw(st.sampled_from(list(status)))
    if to in status.moves().get(current, ()):
        assert status.move("it", current, to, "do it") is to
    else:
        with pytest.raises(InvalidTransition, match=f"^it is {current}: cannot do it$"):
            status.move("it", current, to, "do it")
