"""The plugin system: :mod:`.hookspecs` (the hooks; public as ``prunekit.hookspecs``),
:mod:`.loading` (built-ins and entry points, ``get_plugins``), :mod:`.registry` (what was
registered, with provenance), :mod:`.kinds` (each kind's factory call and metadata checks)."""
