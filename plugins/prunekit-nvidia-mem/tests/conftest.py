"""Makes the fake vendor library beside these tests importable (it lives with the plugin, not in the core)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
