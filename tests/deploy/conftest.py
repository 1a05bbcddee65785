"""Fixtures for the deployment-artifact tests.

The DM fixtures (`fake_x`, `dmgate_factory`, `dmgate`, …) are the integration tests' own,
all of them: a real `dmgate serve` in front of the fake X upstream.
"""

from tests.integration.conftest import *  # noqa: F403
