"""`python -m coconut ...`: the same as the `coconut` command."""
import sys

from coconut.cli import main

if __name__ == "__main__":   # not when an MPI worker (mpi4py.futures) imports the launch's main module
    sys.exit(main())
