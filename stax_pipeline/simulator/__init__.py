"""A deterministic local simulator of the OpenAI and Anthropic Admin APIs (costs, usage, projects,
workspaces, API keys), both served by one process on distinct paths.

Used by the test suite, ``stax simulator`` and ``stax demo``. Every ``sk-admin-`` key sees its
own OpenAI organization and every ``sk-ant-admin01-`` key its own Anthropic organization, each
generated from sha256 of the key; :class:`Faults` injects failures at runtime into both.
"""

from stax_pipeline.simulator.anthropic import AnthropicOrganization
from stax_pipeline.simulator.data import CostFact, Organization
from stax_pipeline.simulator.server import Faults, Simulator, run_simulator, serve

__all__ = [
    "AnthropicOrganization",
    "CostFact",
    "Faults",
    "Organization",
    "Simulator",
    "run_simulator",
    "serve",
]
