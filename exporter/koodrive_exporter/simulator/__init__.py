"""A KooDrive API simulator, so the exporter runs, is tested and benchmarked offline.

Start one in a test with `with Simulator(generate_users(500)) as sim:` and
point a client at `sim.url`; run one by hand with `koodrive-simulator`.
Besides the per-user listing it serves the tenant overview and the
department and group listings, derived from the same users.
"""

from koodrive_exporter.simulator.app import (
    API_PATH,
    DEPARTMENTS_PATH,
    GROUPS_PATH,
    OVERVIEW_PATH,
    Simulator,
)
from koodrive_exporter.simulator.faults import Fault, FaultQueue
from koodrive_exporter.simulator.tenant import (
    UNITS,
    generate_users,
    load_users,
    scale_units,
)

__all__ = [
    "API_PATH",
    "DEPARTMENTS_PATH",
    "GROUPS_PATH",
    "OVERVIEW_PATH",
    "UNITS",
    "Fault",
    "FaultQueue",
    "Simulator",
    "generate_users",
    "load_users",
    "scale_units",
]
