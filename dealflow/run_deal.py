"""``python -m dealflow.run_deal DEAL-0001``: run one deal's flow in this process (used by --detach)."""

import sys

from dealflow.prefect_api import ensure_api

if __name__ == "__main__":
    ensure_api(sys.stdout)
    from flows.deal import deal_flow

    result = deal_flow(deal_number=sys.argv[1])
    print(result)
