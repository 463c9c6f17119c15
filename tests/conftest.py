"""Shared fixtures: a fast KDF, a private cache dir and password for every test."""
from __future__ import annotations

from pathlib import Path

import pytest

from vdtest import PASSWORD


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("VDEDUP_SCRYPT_N", "1024")
    monkeypatch.setenv("VDEDUP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("VDEDUP_PASSWORD", PASSWORD)
    monkeypatch.delenv("VDEDUP_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("VDEDUP_REPOSITORY", raising=False)
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture
def repo_path(tmp_path) -> Path:
    return tmp_path / "repo"




BACKENDS = ["local"]     # the S3 backend adds "s3" here (issue 6)


@pytest.fixture(params=BACKENDS)
def repo_url(request, tmp_path) -> str:
    """A repository location on each backend; tests that must hold on every backend use it."""
    if request.param == "local":
        return str(tmp_path / "repo")
    raise NotImplementedError(request.param)
