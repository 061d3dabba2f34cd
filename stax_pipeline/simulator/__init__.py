"""A deterministic local simulator of the OpenAI Admin API (organization costs, usage, projects).

Used by the test suite, ``stax simulator`` and ``stax demo``. Every ``sk-admin-`` key sees its
own organization, generated from sha256 of the key; :class:`Faults` injects failures at runtime.
"""

from stax_pipeline.simulator.data import CostFact, Organization
from stax_pipeline.simulator.server import Faults, Simulator, run_simulator, serve

__all__ = ["CostFact", "Faults", "Organization", "Simulator", "run_simulator", "serve"]
