"""Plugins shipped with the core; each module is registered like any plugin."""
