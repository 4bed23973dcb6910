"""Prefect tasks: one unit of work each. Open a session, call the domain, commit, return ids."""
