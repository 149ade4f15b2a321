import sys

from pplex_desktop.sim.cli import main

sys.exit(main())
