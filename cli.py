"""`python cli.py ...` from a checkout works like the installed `loom` command."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "platform"))

from loom.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
