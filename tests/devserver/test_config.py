"""The command-line options and the config they make."""

from __future__ import annotations

from devserver.config import add_arguments, config_from_options


def test_command_line_options_become_a_config():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = vars(parser.parse_args([
        "--model-id", "m", "--port", "9000", "--ttft", "0.5", "--tokens-per-second", "12",
        "--max-concurrent-requests", "3", "--fault", "cut", "--fault-after-tokens", "2", "--fault-count", "1",
    ]))
    config = config_from_options(options)
    assert options["port"] == 9000 and options["host"] == "127.0.0.1"
    assert (config.model_id, config.time_to_first_token, config.tokens_per_second) == ("m", 0.5, 12)
    assert (config.max_concurrent_requests, config.fault, config.fault_after_tokens, config.fault_count) == (
        3, "cut", 2, 1)


def test_api_key_option_is_optional():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_options(vars(parser.parse_args(["--model-id", "m"]))).api_key is None
    keyed = config_from_options(vars(parser.parse_args(["--model-id", "m", "--api-key", "sk-dev"])))
    assert keyed.api_key == "sk-dev"


def test_retry_after_option():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_options(vars(parser.parse_args(["--model-id", "m"]))).retry_after == 1
    assert config_from_options(vars(parser.parse_args(["--model-id", "m", "--retry-after", "7"]))).retry_after == 7
