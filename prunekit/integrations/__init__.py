"""Adapters for trainers people already use; each imports its library only when imported itself.

- :mod:`prunekit.integrations.transformers`: ``PrunekitCallback`` for ``transformers.Trainer``;
- :mod:`prunekit.integrations.lightning`: ``PrunekitCallback`` for a Lightning ``Trainer``.

Install their libraries with ``pip install 'prunekit[integrations]'``.
"""
