"""StreamAPI HTTP API client. Plain HTTP, no Dagster.

Every request carries ``key``, ``rid`` and ``sig = md5(values of the other parameters in alphabetical
order of their names + secret + rid)``. ``rid`` comes from :class:`~stream_assets.core.state.RequestIds`,
which keeps it strictly increasing across every process sharing the data dir and holds a per-key lock
until the reply arrives. Replies are XML, parsed with defusedxml (no DTDs, no entity expansion).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ElementTree
from typing import Any, Mapping, TypeVar

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ValidationError

from stream_assets.core.errors import ApiPayloadError, ApiRequestError, ApiResponseError, invalid_payload
from stream_assets.core.http import HttpApi, error_message
from stream_assets.core.secrets import register_signature
from stream_assets.core.state import RequestIds
from stream_assets.core.windows import TimeWindow
from stream_assets.streamapi import models
from stream_assets.streamapi.calls import CALLS, RID_REJECTED, STATUS_MEANINGS, Call

DEFAULT_BASE_URL = "http://api.streamapi.com/service"
Model = TypeVar("Model", bound=BaseModel)


def sign(params: Mapping[str, Any], secret: str, rid: int | str) -> str:
    """The documented signature: md5 hex of the parameter values ordered by name (``sig`` and ``rid``
    excluded, ``key`` included), then the secret, then the rid."""
    values = "".join(str(params[name]) for name in sorted(params) if name not in ("sig", "rid"))
    return hashlib.md5(f"{values}{secret}{rid}".encode()).hexdigest()


class StreamApiError(ApiResponseError):
    """A reply whose ``<code>`` is not 0: carries the code, its documented meaning and ``<msg>``."""

    def __init__(self, endpoint: str, code: int, msg: str) -> None:
        self.meaning = STATUS_MEANINGS.get(code, "Undocumented status code")
        message = self.meaning if msg in ("", self.meaning) else f"{self.meaning}: {msg}"
        super().__init__("StreamAPI", endpoint, message, code=code)


class StreamApiClient(HttpApi):
    """The documented calls, each returning validated models."""

    api_name = "StreamAPI"

    def __init__(self, key: str, secret: str, base_url: str = DEFAULT_BASE_URL, *,
                 request_ids: RequestIds | None = None, **kwargs: Any) -> None:
        # A request that arrived must not be replayed with the same rid: every retry (transport failure,
        # 5xx, 429) takes a fresh rid and signature, see `_send_signed`.
        super().__init__(base_url, **kwargs)
        if not key or not secret:
            raise ApiRequestError(self.api_name, "configuration", "an API key and a secret key are required")
        self.key = key
        self._secret = secret
        self.register_secrets(key, secret)
        self.request_ids = request_ids or RequestIds(key)

    def __repr__(self) -> str:
        return f"StreamApiClient(base_url={self.base_url!r})"

    # --- the calls -----------------------------------------------------------------------------
    def create_session(self, *, site_user_id: int | str | None = None, username: str | None = None,
                       fme_key: str | None = None, is_video_private: bool | None = None) -> models.CreatedSession:
        params = {"site_user_id": site_user_id, "username": username, "fme_key": fme_key,
                  "is_video_private": "true" if is_video_private else None}
        return self._one(models.CreatedSession, self.call("create_session", params))

    def live_session(self, public_hostid: str | int) -> models.LiveSessionInfo:
        return self._one(models.LiveSessionInfo, self.call("live_session", {"public_hostid": public_hostid}))

    def live_sessions(self) -> list[models.LiveSession]:
        return self._many(models.LiveSession, self.call("live_sessions"), "session/live/list", ".//session")

    def public_host_id(self, private_hostid: str) -> models.HostIds:
        return self._one(models.HostIds, self.call("public_host_id", {"private_hostid": private_hostid}))

    def private_host_id(self, public_hostid: str | int) -> models.HostIds:
        return self._one(models.HostIds, self.call("private_host_id", {"public_hostid": public_hostid}))

    def video_recordings(self, *, public_hostid: str | int | None = None, start_date: int | None = None,
                         end_date: int | None = None) -> list[models.VideoRecording]:
        """Recordings whose creation time (epoch ms) lies in ``[start_date, end_date]`` (both inclusive)."""
        params = {"public_hostid": public_hostid, "start_date": start_date, "end_date": end_date}
        return self._many(models.VideoRecording, self.call("video_recordings", params), "video/list", ".//video")

    def recordings_in(self, window: TimeWindow) -> list[models.VideoRecording]:
        """Recordings created in ``[window.start, window.end)``: ``end_date`` is inclusive, so 1 ms earlier."""
        return self.video_recordings(start_date=window.start_ms, end_date=window.end_ms - 1)

    def themes(self) -> list[models.Theme]:
        return self._many(models.Theme, self.call("themes"), "theme/list", ".//theme")

    # --- the mechanism -------------------------------------------------------------------------
    def call(self, name: str, params: Mapping[str, Any] | None = None) -> ElementTree.Element:
        """Sign and send one call; the parsed XML root of a successful (code 0) reply.

        A 203 (rid refused, e.g. after another client of the same key sent a larger one) is retried
        once with a fresh rid; every other non-zero code raises StreamApiError at once.
        """
        spec = CALLS[name]
        params = {k: str(v) for k, v in (params or {}).items() if v is not None}
        missing = [p for p in spec.required if not params.get(p)]
        if missing:
            raise ApiRequestError(self.api_name, spec.path, f"missing required parameter(s): {', '.join(missing)}")
        for attempt in (1, 2):
            try:
                return self._send_signed(spec, params)
            except StreamApiError as error:
                if error.code != RID_REJECTED or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _send_signed(self, spec: Call, params: dict[str, str]) -> ElementTree.Element:
        url = f"{self.base_url}/{spec.path}"

        def attempt(deadline: float):
            with self.request_ids.issue() as rid:
                signed = {**params, "key": self.key}
                signed.update(rid=str(rid), sig=sign(signed, self._secret, rid))
                register_signature(signed["sig"])
                body = {"data": signed} if spec.method == "POST" else {"params": signed}
                return self.send_once(spec.method, spec.path, url, deadline, **body)

        response = self.retrying(spec.path, attempt)
        if response.status_code != 200:
            raise ApiResponseError(self.api_name, spec.path, error_message(response), status=response.status_code)
        root = self._parse_xml(spec.path, response.content)
        code_text = (root.findtext(".//code") or "").strip()
        if not code_text.lstrip("-").isdigit():
            raise ApiPayloadError(self.api_name, spec.path, "reply has no numeric <code>")
        if int(code_text) != 0:
            raise StreamApiError(spec.path, int(code_text), (root.findtext(".//msg") or "").strip())
        return root

    def _parse_xml(self, endpoint: str, content: bytes) -> ElementTree.Element:
        try:
            return SafeElementTree.fromstring(content, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except DefusedXmlException as exc:
            raise ApiPayloadError(self.api_name, endpoint, f"unsafe XML refused ({type(exc).__name__})") from None
        except ElementTree.ParseError as exc:
            excerpt = content[:60].decode("utf-8", errors="replace")
            raise ApiPayloadError(self.api_name, endpoint, f"not well-formed XML ({exc}): {excerpt!r}") from None

    def _one(self, model: type[Model], root: ElementTree.Element) -> Model:
        fields = {child.tag: (child.text or "").strip() for child in root if child.tag not in ("code", "msg")}
        return self._validate(model, fields, root.tag)

    def _many(self, model: type[Model], root: ElementTree.Element, endpoint: str, xpath: str) -> list[Model]:
        records = []
        for element in root.iterfind(xpath):
            fields = {child.tag: (child.text or "").strip() for child in element}
            fields.update(element.attrib)
            records.append(self._validate(model, fields, endpoint))
        return records

    def _validate(self, model: type[Model], fields: dict[str, str], endpoint: str) -> Model:
        try:
            return model.model_validate({k: v for k, v in fields.items() if v != ""})
        except ValidationError as exc:
            raise invalid_payload(self.api_name, endpoint, model.__name__, exc) from None
