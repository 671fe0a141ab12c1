# Optimizers import torch._dynamo lazily on their first step. pytester's in-process
# runs drop modules first imported inside them, and a second import of _dynamo
# fails (it registers a torch library twice), so import it once up front.
import pytest
import torch._dynamo  # noqa: F401

pytest_plugins = ("pytester",)


@pytest.fixture(autouse=True)
def _outside_xdist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under pytest-xdist (`pytest -n auto`), the benchmark runs these tests start must time
    and save as they do alone: pytest-benchmark turns itself off in any process that has
    PYTEST_XDIST_WORKER set, so it is unset for the test (the worker read it at start)."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
