"""One Dagster Component per API: one account's settings -> that API's definitions.

Each folder under ``stream_assets/defs/<api>/`` holding a ``defs.yaml`` is one instance (account) of an API:
``default/`` keeps every name of today and reads today's environment variables; any other folder is a tenant
(design.md, "Tenants"), e.g. ``stream_assets/defs/streamtime/acme/defs.yaml``::

    type: stream_assets.components.StreamtimeComponent
    attributes:
      tenant: acme
      api_key: "{{ env.STREAMTIME_ACME_API_KEY }}"
      rate_limits: "60/60,720/3600"

The components only wire settings into the per-API builders (``<api>/definitions.py``). Secrets written as
``"{{ env.NAME }}"`` become ``dg.EnvVar("NAME")``: read by Dagster when a run starts, shown in the UI by name,
never resolved at load. An optional setting left out is read from its environment variable by the resource
when a run uses it (a bad value fails that run with a SettingError naming it, never the code location).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Optional, Union

import dagster as dg
from dagster.components.scaffold.scaffold import ScaffoldRequest, scaffold_with

from stream_assets.core import config
from stream_assets.core.errors import SettingError
from stream_assets.core.tenants import Tenant

log = logging.getLogger("stream_assets")

_ENV_REFERENCE = re.compile(r"^\s*\{\{\s*env(?:\.(\w+)|\(\s*['\"](\w+)['\"]\s*\))\s*\}\}\s*$")


def _secret(context: dg.ResolutionContext, raw: Any) -> Any:
    """``"{{ env.NAME }}"`` -> ``dg.EnvVar("NAME")`` (not read now); anything else resolved as usual."""
    if isinstance(raw, str):
        match = _ENV_REFERENCE.match(raw)
        if match:
            return dg.EnvVar(match.group(1) or match.group(2))
    return context.resolve_value(raw, as_type=str)


def _text(context: dg.ResolutionContext, raw: Any) -> Optional[str]:
    """A setting kept as text and checked when used (a bad number must not stop the code location loading)."""
    value = context.resolve_value(raw)
    return None if value is None or str(value).strip() == "" else str(value)


Secret = Annotated[Any, dg.Resolver(_secret, model_field_type=str, inject_before_resolve=False,
                                    description='The value, or "{{ env.NAME }}" to read it from NAME at run time')]
Setting = Annotated[Optional[str], dg.Resolver(_text, model_field_type=Optional[Union[str, int, float]])]

# (defs folder, API, tenant) -> the folder that defines it: two instances of one API with one tenant are refused
_INSTANCES: dict[tuple[Path, str, str | None], Path] = {}


class TenantScaffolder(dg.Scaffolder):
    """``dg scaffold defs stream_assets.components.StreamtimeComponent streamtime/acme`` writes a defs.yaml for
    tenant ``acme`` (the folder's name) whose secrets come from ``STREAMTIME_ACME_*`` variables."""

    def scaffold(self, request: ScaffoldRequest) -> None:
        component: type[ApiComponent] = request.type_name and _component_class(request.type_name)
        tenant = re.sub(r"[^a-z0-9_]", "_", Path(request.target_path).name.lower())
        prefix = f"{component.api.upper()}_{tenant.upper()}"
        attributes = {"tenant": tenant, **{name: f"{{{{ env.{prefix}_{name.upper()} }}}}" for name in component.secrets}}
        dg.scaffold_component(request, attributes)


def _component_class(type_name: str) -> type["ApiComponent"]:
    return {cls.__name__: cls for cls in ApiComponent.__subclasses__()}[type_name.rsplit(".", 1)[-1]]


class ApiComponent(dg.Component, dg.Resolvable, dg.Model):
    """What every API's instance has: a tenant name (none for the default instance), the first daily
    partition, and the deployment settings its resource carries (empty: the ``STREAM_ASSETS_*`` variables)."""

    api: ClassVar[str]
    secrets: ClassVar[tuple[str, ...]]

    tenant: Optional[str] = None
    start_date: Setting = None
    data_dir: Setting = None
    state_url: Setting = None
    http_request_seconds: Setting = None
    http_total_seconds: Setting = None
    http_retries: Setting = None
    http_backoff_seconds: Setting = None
    http_retry_after_cap_seconds: Setting = None
    http_max_response_mb: Setting = None
    refresh_lookback_days: Setting = None
    refresh_hours: Setting = None

    def naming(self, context: dg.ComponentLoadContext) -> Tenant:
        """The instance's names; a bad tenant name, or a second instance of this API with the same tenant,
        is refused here, when the code location loads."""
        tenant = Tenant(self.api, self.tenant or None)
        here = Path(context.path).resolve()  # defs/<api>/<account>: instances are compared within one defs folder
        elsewhere = _INSTANCES.setdefault((here.parent.parent, self.api, tenant.name), here)
        if elsewhere != here:
            raise ValueError(f"{self.api}: two instances with tenant {tenant.name or '(none: the default)'!r}, in "
                             f"{elsewhere} and {here}; give each account its own tenant name")
        return tenant

    def partitions_start(self) -> str:
        """The first daily partition: the attribute, else ``STREAM_ASSETS_START_DATE``, else 2026-01-01. A bad
        value is logged and replaced by the default (loading must not fail); runs still start from it."""
        name = "start_date" if self.start_date else "STREAM_ASSETS_START_DATE"
        try:
            return config.iso_date(name, self.start_date) if self.start_date else config.start_date()
        except SettingError as error:
            log.warning(f"{self.api}: {error}; partitions start at {config.DEFAULT_START_DATE} instead")
            return config.DEFAULT_START_DATE

    def deployment_settings(self) -> dict[str, Any]:
        names = ("data_dir", "state_url", "http_request_seconds", "http_total_seconds", "http_retries",
                 "http_backoff_seconds", "http_retry_after_cap_seconds", "http_max_response_mb",
                 "refresh_lookback_days", "refresh_hours")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


@scaffold_with(TenantScaffolder)
class StreamtimeComponent(ApiComponent):
    """One Streamtime organisation: its assets, checks, jobs, schedules, budget sensor and resource."""

    api: ClassVar[str] = "streamtime"
    secrets: ClassVar[tuple[str, ...]] = ("api_key",)

    api_key: Secret
    base_url: Setting = None
    rate_limits: Setting = None
    processing_limits: Setting = None
    date_selectors: Optional[dict[str, str]] = None
    sensor_lookback_days: Setting = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from stream_assets.streamtime.definitions import build_defs
        from stream_assets.streamtime.resources import StreamtimeResource

        resource = StreamtimeResource(
            api_key=self.api_key, base_url=self.base_url, rate_limits=self.rate_limits,
            processing_limits=self.processing_limits, date_selectors=self.date_selectors,
            sensor_lookback_days=self.sensor_lookback_days, **self.deployment_settings())
        return build_defs(self.naming(context), resource, start_date=self.partitions_start())


@scaffold_with(TenantScaffolder)
class StreamrootComponent(ApiComponent):
    """One Streamroot customer: its ten endpoint assets, daily KPIs, checks, job, schedule and resource."""

    api: ClassVar[str] = "streamroot"
    secrets: ClassVar[tuple[str, ...]] = ("api_key", "customer_id")

    api_key: Secret
    customer_id: Secret
    base_url: Setting = None
    content_type: Setting = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from stream_assets.streamroot.definitions import build_defs
        from stream_assets.streamroot.resources import StreamrootResource

        resource = StreamrootResource(api_key=self.api_key, customer_id=self.customer_id, base_url=self.base_url,
                                      **({"content_type": self.content_type} if self.content_type else {}),
                                      **self.deployment_settings())
        return build_defs(self.naming(context), resource, start_date=self.partitions_start())


@scaffold_with(TenantScaffolder)
class StreamAPIComponent(ApiComponent):
    """One StreamAPI key: recordings, themes, live sessions, their sensor and resource."""

    api: ClassVar[str] = "streamapi"
    secrets: ClassVar[tuple[str, ...]] = ("key", "secret")

    key: Secret
    secret: Secret
    base_url: Setting = None
    live_poll_seconds: Setting = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from stream_assets.streamapi.definitions import build_defs
        from stream_assets.streamapi.resources import StreamApiResource

        resource = StreamApiResource(key=self.key, secret=self.secret, base_url=self.base_url,
                                     live_poll_seconds=self.live_poll_seconds, **self.deployment_settings())
        return build_defs(self.naming(context), resource, start_date=self.partitions_start())


@scaffold_with(TenantScaffolder)
class StreamOneComponent(ApiComponent):
    """One StreamOne actor: items, live streams, view snapshots, their schedules and resource."""

    api: ClassVar[str] = "streamone"
    secrets: ClassVar[tuple[str, ...]] = ("actor_id", "psk")

    actor_id: Secret
    psk: Secret
    auth_type: Setting = None
    account: Setting = None
    timezone: Setting = None
    base_url: Setting = None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from stream_assets.streamone.definitions import build_defs
        from stream_assets.streamone.resources import StreamOneResource

        resource = StreamOneResource(actor_id=self.actor_id, psk=self.psk, auth_type=self.auth_type,
                                     account=self.account, timezone=self.timezone, base_url=self.base_url,
                                     **self.deployment_settings())
        return build_defs(self.naming(context), resource, start_date=self.partitions_start())


def forget_instances() -> None:
    """Before the defs folder is loaded (again): the duplicate check compares one load's instances."""
    _INSTANCES.clear()
