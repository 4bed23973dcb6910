"""The outbox never strands mail: a claim whose sender died before the SMTP DATA step goes back
to pending by itself and is sent once; a message handed over by a sender that died is never sent
again by itself; a sender whose claim was taken back sends nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from types import SimpleNamespace

from sqlalchemy import select, update

from dealflow.scenario import play_direct
from models import Email, utcnow
from models.outbox import begin_handover, claim_email, release_dead_claims
from services import mailer
from services.config import PROJECT_ROOT
from services.db import session_scope
from tasks.deal_steps import deliver_mail, mail_pending


def _estimate_mail_pending(deal: str) -> int:
    """The deal waits for the customer's decision, its estimate email not yet sent."""
    from tasks.deal_steps import send_estimate

    from .helpers import record_answer

    play_direct(deal, until="estimate-rev-1")
    record_answer.fn(deal, "estimate-rev-1", {"by": "mark", "lines": [{"sku": "VMC-850", "quantity": 1}]})
    send_estimate.fn(deal)
    with session_scope() as s:
        return s.scalars(select(Email.id).where(Email.status == "pending")).one()


def _set(email_id: int, **values) -> None:
    with session_scope() as s:
        s.execute(update(Email).where(Email.id == email_id).values(**values))
        s.commit()


def _row(email_id: int) -> SimpleNamespace:
    with session_scope() as s:
        m = s.get(Email, email_id)
        return SimpleNamespace(status=m.status, attempts=m.attempts, claimed_by=m.claimed_by)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_claim_whose_sender_died_before_data_is_sent_once(new_deal, smtp):
    email_id = _estimate_mail_pending(new_deal)
    now = utcnow()
    _set(email_id, status="sending", claimed_by=f"{socket.gethostname()}:{_dead_pid()}:1", claimed_at=now,
         lease_until=now + timedelta(minutes=3), attempts=1)
    assert mail_pending(new_deal)  # so the deal's flow runs its mail task on its next turn
    assert deliver_mail.fn(new_deal) == [email_id]
    assert deliver_mail.fn(new_deal) == []
    assert len(smtp.received) == 1
    row = _row(email_id)
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_live_senders_claim_is_left_alone_until_its_lease_runs_out(new_deal, smtp):
    email_id = _estimate_mail_pending(new_deal)
    now = utcnow()
    _set(email_id, status="sending", claimed_by=mailer.sender_id(), claimed_at=now,
         lease_until=now + timedelta(minutes=3))
    assert deliver_mail.fn(new_deal) == [] and not mail_pending(new_deal)
    _set(email_id, claimed_by="another-host:4242:99")  # another host: only its lease can tell
    assert deliver_mail.fn(new_deal) == []
    _set(email_id, lease_until=utcnow() - timedelta(seconds=1))
    assert deliver_mail.fn(new_deal) == [email_id]
    assert len(smtp.received) == 1


def test_a_sender_whose_claim_was_taken_back_sends_nothing(new_deal):
    email_id = _estimate_mail_pending(new_deal)
    with session_scope() as s:
        assert claim_email(s, email_id, "host-a:1:1", timedelta(seconds=-1))  # a lease already over
        assert not claim_email(s, email_id, "host-b:2:2", timedelta(minutes=3))  # one claim at a time
        s.commit()
        assert release_dead_claims(s, lambda owner: True) == [email_id]  # its lease ran out
        assert claim_email(s, email_id, "host-b:2:2", timedelta(minutes=3))
        s.commit()
        assert not begin_handover(s, email_id, "host-a:1:1")  # the first sender, late: may not send
        assert begin_handover(s, email_id, "host-b:2:2")
        s.commit()
        assert release_dead_claims(s, lambda owner: False) == []  # handed over: never released


def test_mail_handed_over_by_a_sender_that_died_is_shown_as_of_unknown_fate(new_deal, smtp):
    from click.testing import CliRunner

    from dealflow.cli import main

    email_id = _estimate_mail_pending(new_deal)
    then = utcnow() - timedelta(minutes=5)
    _set(email_id, status="sending", claimed_by=f"{socket.gethostname()}:{_dead_pid()}:1", claimed_at=then,
         handed_at=then)
    assert not mail_pending(new_deal) and deliver_mail.fn(new_deal) == [] and smtp.received == []
    out = CliRunner().invoke(main, ["outbox"]).output
    assert "sending (fate unknown)" in out and "1 of unknown fate" in out


def test_a_sender_killed_while_the_mail_server_is_slow_strands_nothing(new_deal, smtp):
    """A real process claims the estimate email and is killed (SIGKILL) while the server takes its
    time over the recipient; the next sender releases the claim and the message arrives once."""
    email_id = _estimate_mail_pending(new_deal)
    smtp.rcpt_delay = 30
    child = subprocess.Popen([sys.executable, "-c", "from services.db import session_scope\n"
                              "from services import mailer\n"
                              "with session_scope() as s:\n    mailer.deliver(s)\n"],
                             cwd=PROJECT_ROOT, env=os.environ.copy())
    deadline = time.monotonic() + 60
    while _row(email_id).status != "sending":
        assert time.monotonic() < deadline and child.poll() is None, "the sender never claimed the email"
        time.sleep(0.05)
    assert _row(email_id).claimed_by.split(":")[1] == str(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    smtp.rcpt_delay = 0
    assert deliver_mail.fn(new_deal) == [email_id]
    assert len(smtp.received) == 1  # the killed sender's connection died before DATA
    assert _row(email_id).status == "sent"


def test_mail_of_unknown_fate_is_sent_again_at_once_when_its_sender_is_gone_and_not_under_a_live_one(new_deal,
                                                                                                     smtp):
    """`outbox retry --force` right after a kill: the killed sender can no longer finish its
    hand-over, so the person need not wait; a live sender's hand-over of a moment ago is left to it
    and the message says when to try again."""
    from click.testing import CliRunner

    from dealflow.cli import main

    email_id = _estimate_mail_pending(new_deal)
    just_now = utcnow() - timedelta(seconds=1)
    live = f"{socket.gethostname()}:{os.getpid()}:"
    _set(email_id, status="sending", claimed_by=live, claimed_at=just_now, handed_at=just_now)
    refused = CliRunner().invoke(main, ["outbox", "retry", str(email_id), "--force"])
    assert refused.exit_code == 2 and "handing it over right now" in refused.output, refused.output
    assert "try again after" in refused.output and _row(email_id).status == "sending"

    _set(email_id, claimed_by=f"{socket.gethostname()}:{_dead_pid()}:1")
    done = CliRunner().invoke(main, ["outbox", "retry", str(email_id), "--force"])
    assert done.exit_code == 0 and f"email {email_id}: sent" in done.output, done.output
    assert _row(email_id).status == "sent" and len(smtp.received) == 1
