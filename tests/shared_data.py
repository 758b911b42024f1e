"""Where the project's shared data files are: ../shared/data beside the repository (as
on developer machines and in CI), or $COCONUT_SHARED_DATA."""
import os
from pathlib import Path

DATA = Path(os.environ.get("COCONUT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
