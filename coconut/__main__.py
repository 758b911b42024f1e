"""`python -m coconut ...`: the same as the `coconut` command."""
import sys

from coconut.cli import main

sys.exit(main())
