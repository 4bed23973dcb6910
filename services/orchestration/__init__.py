"""Everything dealflow does with Prefect beyond declaring flows (``@flow``), tasks (``@task``) and
forms (``RunInput``): the one package to check when Prefect changes.

- ``engine``: what a flow or task uses while it runs: its logger, the current run, result states,
  no caching, and how deal flows run in a process (without heartbeats);
- ``runs``: flow runs seen from outside: a run's state, whether it is live, its tags, cancelling
  it, the runs waiting for a person, resuming one;
- ``pausing``: how a run waits for a person: it suspends (from a deployment), or pauses with
  dealflow's mirror of Prefect's ``pause_flow_run``;
- ``forms``: a wait's form as Prefect stores it: its schema (Prefect's private
  ``create_v2_schema``), its description (``RunInput._description``), the answer as stored;
- ``artifacts``: pages and tables in the UI;
- ``deployments``: the 'deal' deployment and a run of it, and the ``prefect`` commands that
  create the pools, deploy ``prefect.yaml`` and start a worker;
- ``worker``: the executor's side of a work pool: heartbeats, due runs (the workers' own
  endpoint), claims, ``run_flow``, recovery;
- ``server``: the Prefect server ``dealflow up`` runs: its tuning, its changes for SQLite, the
  pools' pinned job template;
- ``api``: the API a command talks to (a temporary server when none is set);
- ``blocks``: Prefect's Secret blocks.

Every private or internal Prefect name relied on here has a contract test
(``tests/test_prefect_contract.py``); ``tests/test_prefect_boundary.py`` keeps Prefect out of
every other module. Importing this package, or any module of it but ``engine`` and ``pausing``
(which only flows and tasks import), imports no Prefect: a command that only reads the
database starts without it.
"""
