"""`python -m dealflow.cli`: the command, as `dealflow up` starts its executors, portal and gateway
(and as the executor recognises its own processes)."""

from dealflow.cli import main

if __name__ == "__main__":
    main()
