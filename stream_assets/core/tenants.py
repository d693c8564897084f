"""Names of one account (instance) of an API: the default instance keeps today's names, a tenant gets its own.

Tenant ``acme`` of Streamtime: asset keys ``[streamtime_acme, <table>]``, DuckDB schema, group, pool and
resource key ``streamtime_acme``, jobs, schedules and sensors named ``<name>_acme`` (design.md, "Tenants").
A tenant name becomes a schema, a pool and part of SQL and Dagster names, so it is lowercase letters, digits
and underscores, starting with a letter; anything else is refused when the code location loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TENANT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class TenantNameError(ValueError):
    """A tenant name that cannot become a schema, a pool and a Dagster name."""


@dataclass(frozen=True)
class Tenant:
    api: str  # "streamtime", "streamroot", "streamapi", "streamone": the default schema, group and resource key
    name: str | None = None  # None: the default instance

    def __post_init__(self) -> None:
        if self.name is not None and not TENANT_NAME.match(self.name):
            raise TenantNameError(
                f"{self.api}: tenant {self.name!r} must be lowercase letters, digits and underscores, starting "
                "with a letter (it names a DuckDB schema, a pool and Dagster jobs), e.g. 'acme' or 'brand_2'")

    @property
    def prefix(self) -> str:
        """Schema, group, pool, resource key and first part of every asset key."""
        return self.api if self.name is None else f"{self.api}_{self.name}"

    schema = group = pool = resource_key = prefix

    def named(self, name: str) -> str:
        """A job's, schedule's or sensor's name for this instance."""
        return name if self.name is None else f"{name}_{self.name}"

    def label(self) -> str:
        """How messages name the instance: ``Streamtime`` or ``Streamtime (tenant acme)``."""
        return self.api if self.name is None else f"{self.api} (tenant {self.name})"
