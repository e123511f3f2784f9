"""Projects (tenants): every study, dataset, job, segmentation, model version and API key belongs to one.

A project is a name, created by the first key made for it (``lrc keys create --project NAME``).
Records are looked up with their project in the query, so that another project's record is simply
not found (404, never 403: a caller learns nothing about what other projects hold). Model versions
may also be :data:`SHARED`: read-only and visible to every project (the starter model).
"""

from __future__ import annotations

import re

DEFAULT = "default"  # the bootstrap admin key's project; records of databases from before projects
SHARED = "*"  # model versions every project sees (not a valid project name, so no key can own it)
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    """``name`` if it is a valid project name (lower case letters, digits, ``.``, ``_``, ``-``; 1-64).

    Raises:
        ValueError: it is not.
    """
    if not NAME.match(name):
        raise ValueError(
            f"project name {name!r} must be 1-64 lower-case letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name
