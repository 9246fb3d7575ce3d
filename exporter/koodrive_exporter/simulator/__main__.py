"""Run the simulator with `python -m koodrive_exporter.simulator`."""

import sys

from koodrive_exporter.simulator.cli import main

sys.exit(main())
