"""dealflow's command line and the scripted demo: the top floor, over flows/, tasks/ and models/."""

import os

import services  # noqa: F401  (every dealflow process writes its files for its owner alone)

# Without PREFECT_API_URL every dealflow process starts a temporary Prefect server, and Prefect
# waits 20 s for it. On a busy 2-core machine its first start (a fresh database, migrations)
# takes longer, and the README's first command failed more often than it worked. Prefect reads
# its settings when it is first imported, so the default is set here, before any of dealflow
# imports Prefect; a value the user set is kept.
STARTUP_TIMEOUT_SECONDS = 600
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(STARTUP_TIMEOUT_SECONDS))

# Every Prefect client builds a TLS context from the whole CA bundle (~30 ms of CPU each; a deal
# makes dozens of clients), even when the API is plain http:// and TLS never happens. For a
# plain-HTTP API (one named http://, or none: the temporary local server is http://127.0.0.1),
# a one-certificate bundle is given instead; it is never used to trust anything, because no TLS
# connection is made to that API. An https:// API, a Prefect profile that names one, or a
# certificate file the user set, is left alone.
def _plain_http_api(env=os.environ) -> bool:
    url = env.get("PREFECT_API_URL")
    if url is not None:
        return url.startswith("http://")
    home = os.path.expanduser(env.get("PREFECT_HOME") or "~/.prefect")
    profiles = os.path.expanduser(env.get("PREFECT_PROFILES_PATH") or os.path.join(home, "profiles.toml"))
    try:
        with open(profiles, encoding="utf-8") as f:
            return "https://" not in f.read()  # a profile may name the API
    except OSError:
        return True


if "PREFECT_API_SSL_CERT_FILE" not in os.environ and _plain_http_api():
    os.environ["PREFECT_API_SSL_CERT_FILE"] = os.path.join(os.path.dirname(__file__), "plain-http-ca.pem")

# A shell pointed at the server `dealflow up` runs for this data folder gets its credential
# (Prefect's basic auth) from the folder, for the same reason: before Prefect reads its settings.
from .api_credential import supply as _supply_api_credential  # noqa: E402

_supply_api_credential()
