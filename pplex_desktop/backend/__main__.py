import sys

from pplex_desktop.backend.cli import main

sys.exit(main())
