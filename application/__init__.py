"""The use cases: what a person does with the system, each one unit of work.

A use case takes plain values and who does it (``by``, a staff handle or the operator's name),
opens its own session (``uow.unit_of_work``), calls the domain (``models/``), records the audit
entry, commits once, and returns plain data (dicts, lists, dataclasses), never an ORM object. A
broken rule raises the domain's error and leaves nothing written.

The doors call them: the command line (``dealflow/cli/``) today. This package knows nothing of
Prefect, Click, the tasks, the flows or the doors themselves (a test reads its imports); the
words of a door (options, prompts, output) stay in the door.

One module per area: ``catalog`` (products and stock), ``customers``, ``prices`` (price lists and
exchange rates), ``leads``, ``staff`` (accounts, roles, limits, codes, login sessions),
``outbox`` (mail a person acts on), ``company`` (its details, and setting up an installation),
``reports``.
"""
