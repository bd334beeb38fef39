"""One module per ``lyra-sim`` subcommand (see ``lyra_sim/cli.py`` for the contract)."""
