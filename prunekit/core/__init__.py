"""prunekit's core: plugin registry, training runner and measurement."""
