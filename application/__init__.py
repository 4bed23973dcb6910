"""The use cases: what a person does with the system, each one unit of work.

A use case takes plain values and who does it (``by``, a staff handle or the operator's name),
opens its own session (``uow.unit_of_work``), calls the domain (``models/``), records the audit
entry, commits once, and returns plain data (dicts, lists, dataclasses), never an ORM object. A
broken rule raises the domain's error and leaves nothing written.

The doors call them: the command line (``dealflow/cli/``), the tasks of the deal and of the
scheduled runs, the customer portal, the team's gateway, the demo and its scripted scenario. This package knows nothing of Prefect, Click, the tasks, the
flows or the doors themselves (a test reads its imports); the words of a door (options, prompts,
output) stay in the door, and so does whatever needs Prefect (a run's state, resume, tags): the
door asks ``services.orchestration`` and hands the use case the answer (``live_state``).

One module per area: ``catalog`` (products and stock), ``customers``, ``prices`` (price lists and
exchange rates), ``leads``, ``deals`` (start one, show one, list them; its summary and page, and
the steps its flow runs), ``driver`` (a deal's plan, turn by turn), ``pipeline`` (follow-ups and
stages of the opportunity), ``answers`` (an answer to a wait checked before it is sent, a
refused attempt on the record, where a wait stands), ``inbox`` (the open waits), ``staff``
(accounts, roles, limits, codes, login sessions), ``outbox`` (mail a person acts on, and the
outbox run's sending), ``reminders`` (find, queue and send the due ones), ``company`` (its
details, and setting up an installation), ``reports``, ``portal`` (what a customer does through
a link: read, download, answer, ask for a renewal), ``gateway`` (signing in, sealing a person's
answer, the audit of refusals), ``demo`` (what the demo and the scripted
scenario do: seeding, the scenario's deal, the opportunity worked, a person signed in with the
code their app shows).
"""
