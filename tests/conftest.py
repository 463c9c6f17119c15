"""Shared fixtures: a fast KDF, a private cache dir and password for every test."""
from __future__ import annotations

import os
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




BACKENDS = ["local", "s3"]


@pytest.fixture(params=BACKENDS)
def repo_url(request, tmp_path, monkeypatch) -> str:
    """A repository location on each backend; tests that must hold on every backend use it.
    For "s3": a fresh bucket (created by `init`) on the moto server at VDEDUP_TEST_S3_ENDPOINT,
    with VDEDUP_S3_ENDPOINT and test credentials set for the CLI, in-process or not."""
    if request.param == "local":
        return str(tmp_path / "repo")
    if request.param == "s3":
        import uuid
        endpoint = os.environ.get("VDEDUP_TEST_S3_ENDPOINT")
        if not endpoint:
            pytest.fail("VDEDUP_TEST_S3_ENDPOINT is not set: start the test servers with "
                        "'bash scripts/servers.sh start' and source $(bash scripts/servers.sh envfile)")
        monkeypatch.setenv("VDEDUP_S3_ENDPOINT", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
        return f"s3://vdedup-test-{uuid.uuid4().hex[:16]}/repo"
    raise NotImplementedError(request.param)
