import sys
from pathlib import Path

# tests/harness.py and test/fake_provider.py are imported by name.
HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent / "test"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
