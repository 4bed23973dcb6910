"""Infrastructure under the tasks and the CLI: settings, database sessions, rendering and mail.

Free of Prefect, like models/; unlike models/ it knows about files, templates and SMTP.
"""
