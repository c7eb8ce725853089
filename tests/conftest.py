"""Shared fixtures. Real data lives in ../shared/data beside the project root."""

import os
import pathlib

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The staged real corpora; a test that needs them fails loudly without them."""
    if not SHARED_DATA.is_dir():
        pytest.fail(
            f"Real test data is missing: expected {SHARED_DATA} "
            "(the shared/data folder beside the project root)."
        )
    return SHARED_DATA


@pytest.fixture
def processes():
    """Processes the test started; any still running when it ends are killed."""
    started = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
