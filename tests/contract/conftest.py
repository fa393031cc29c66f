import pytest


@pytest.fixture(scope="session", autouse=True)
def _shared_cache(tiny_cache):
    """Contract suites resolve presets through PORTABLE_CACHE: use the session's cache."""
