"""`python -m devserver --model-id zephyr-7b-beta --port 8081`: serve until interrupted."""

from __future__ import annotations

import argparse

import devserver
from devserver.app import run
from devserver.config import add_arguments, config_from_options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devserver", description=devserver.__doc__.splitlines()[0])
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    run(config_from_options(options), options["host"], options["port"])


if __name__ == "__main__":
    main()
