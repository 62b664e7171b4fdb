"""Workflow tests: the Java test server with time skipping, the pydantic data converter."""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment


@pytest.fixture(scope="module")
async def client(time_skipping_env: WorkflowEnvironment) -> Client:
    """The environment's client with the services' data converter.

    Built from the environment client's config rather than a fresh connection, so it
    keeps the interceptor that unlocks time skipping while a test awaits a result.
    """
    config = time_skipping_env.client.config()
    config["data_converter"] = pydantic_data_converter
    return Client(**config)
