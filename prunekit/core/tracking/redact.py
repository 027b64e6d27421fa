"""Keep credentials out of everything prunekit writes, prints or hands to trackers.

Credentials come from each tool's usual environment variables or config files,
never from prunekit settings. Two things are removed wherever they appear in a
string (config, summary, command line, error messages, tracker parameters):

- the value of any credential-like environment variable (name containing
  TOKEN, PASSWORD, SECRET, API_KEY, ACCESS_KEY or CREDENTIAL, plus the names
  trackers declare in their ``credentials`` metadata);
- the user information of a URI (``https://user:pass@host`` becomes
  ``https://***@host``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
_CREDENTIAL_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|API_KEY|APIKEY|ACCESS_KEY|CREDENTIAL", re.I)
# up to the authority's last '@': a password may hold a raw '@' (``user:p@ss@host``)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s'\"<>]+)@")
_MIN_SECRET_LENGTH = 4  # shorter values ("1", "true") would mask harmless text


def secret_values(extra_names: Iterable[str] = ()) -> list[str]:
    """Values of credential-like environment variables, longest first."""
    names = set(extra_names)
    values = {
        value
        for name, value in os.environ.items()
        if (name in names or _CREDENTIAL_NAME.search(name)) and len(value) >= _MIN_SECRET_LENGTH
    }
    return sorted(values, key=len, reverse=True)


class Redactor:
    """Replaces secrets in strings and, recursively, in JSON-like data."""

    def __init__(self, extra_names: Iterable[str] = ()) -> None:
        self.secrets = secret_values(extra_names)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, MASK)
        return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", value)

    def __call__(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {self(k) if isinstance(k, str) else k: self(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return type(data)(self(v) for v in data)
        return data
