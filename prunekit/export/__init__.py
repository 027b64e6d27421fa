"""Export a run's final model to safetensors (dense, sparse bitmask + values, or N:M packed) and load it back.

``prunekit export RUN_DIR --format dense|sparse|nm --out FILE.safetensors``; :func:`load_model`
rebuilds the plain model from the file alone. Layouts: :mod:`prunekit.export.formats`.
"""

from prunekit.export.formats import FORMATS
from prunekit.export.load import load_model

__all__ = ["FORMATS", "load_model"]
