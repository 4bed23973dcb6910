"""``python -m dealflow.run_case return RMA-0001 DEAL-0001``: run one return's or warranty claim's
flow in this process (used by --detach)."""

import sys

from dealflow.prefect_api import ensure_api

if __name__ == "__main__":
    ensure_api(sys.stdout)
    from flows.cases import run_case_here

    print(run_case_here(sys.argv[1], sys.argv[2], sys.argv[3]))
