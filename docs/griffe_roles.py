"""A Griffe extension for the API reference: the docstrings' Sphinx roles (``:class:`~prunekit.api.Option```,
``:mod:`.runner```) become Markdown code (`Option`, `runner`), which mkdocstrings renders as it is."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|mod|func|meth|data|attr|exc|obj):`(~?)\.?([^`]+)`")


def markdown(text: str) -> str:
    """``:class:`~a.B``` -> `B`; ``:mod:`a.b``` -> `a.b`."""
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring:
            obj.docstring.value = markdown(obj.docstring.value)
