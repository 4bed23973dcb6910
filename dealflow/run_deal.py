"""``python -m dealflow.run_deal DEAL-0001``: run one deal's flow in this process (used by --detach)."""

import sys

from flows.deal import deal_flow

if __name__ == "__main__":
    result = deal_flow(deal_number=sys.argv[1])
    print(result)
