"""dealflow's command line and the scripted demo: the top floor, over flows/, tasks/ and models/."""

import os

# Without PREFECT_API_URL every dealflow process starts a temporary Prefect server, and Prefect
# waits 20 s for it. On a busy 2-core machine its first start (a fresh database, migrations)
# takes longer, and the README's first command failed more often than it worked. Prefect reads
# its settings when it is first imported, so the default is set here, before any of dealflow
# imports Prefect; a value the user set is kept.
STARTUP_TIMEOUT_SECONDS = 600
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(STARTUP_TIMEOUT_SECONDS))

# A shell pointed at the server `dealflow up` runs for this data folder gets its credential
# (Prefect's basic auth) from the folder, for the same reason: before Prefect reads its settings.
from .api_credential import supply as _supply_api_credential  # noqa: E402

_supply_api_credential()
