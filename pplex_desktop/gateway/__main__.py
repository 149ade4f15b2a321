import sys

from pplex_desktop.gateway.cli import main

sys.exit(main())
