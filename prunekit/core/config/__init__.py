"""What users set: :mod:`.settings` (``RunConfig``, one run's settings and their defaults) and
:mod:`.options` (``Option``, the typed options a plugin declares), :mod:`.yamlfile` (bounded YAML reading).
Imports nothing else of core."""
