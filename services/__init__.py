"""Infrastructure under the tasks and the CLI: settings, database sessions, rendering and mail.

Free of Prefect, like models/, except ``orchestration/``: the one package that uses Prefect beyond declaring
flows, tasks and forms (a test reads every import). Unlike models/ it knows about files,
templates and SMTP.
"""

from .files import owner_only

# Everything a dealflow process writes (databases, Prefect's home, mail with live portal links,
# documents, logs) is its owner's alone; the servers, workers and flows it starts inherit it.
owner_only()
