import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--seed", type=int, default=None, help="replay one simulation seed (tests/sim)")
    parser.addoption("--sim-seeds", type=int, default=1000, help="how many random simulation seeds to run")
