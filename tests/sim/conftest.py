import pytest


@pytest.fixture
def seeds(request: pytest.FixtureRequest) -> list[int]:
    one = request.config.getoption("--seed")
    if one is not None:
        return [one]
    return list(range(request.config.getoption("--sim-seeds")))
