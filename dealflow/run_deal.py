"""``python -m dealflow.run_deal DEAL-0001``: run one deal's flow in this process (used by --detach)."""

import sys

from dealflow.prefect_api import ensure_api

if __name__ == "__main__":
    ensure_api(sys.stdout)
    from flows.deal import run_here

    result = run_here(sys.argv[1])
    print(result)
