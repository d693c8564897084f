"""The StreamAPI calls as data: method, path, required and optional parameters, and the status codes."""

from __future__ import annotations

from dataclasses import dataclass

# Status codes from the HTTP reference (code 0 is OK).
STATUS_MEANINGS: dict[int, str] = {
    1: "Missing required parameter(s)",
    8: "No user found",
    46: "No session found",
    100: "Unknown error",
    200: "Invalid API key",
    201: "Cannot request this call for a user not created by the API caller",
    202: "Invalid sig (signature) value",
    203: "Invalid request ID value",
}
RID_REJECTED = 203


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str  # appended to the base URL, e.g. {base}/video/list
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


CALLS: dict[str, Call] = {
    call.name: call
    for call in (
        Call("create_session", "POST", "session/create", (), ("site_user_id", "username", "fme_key", "is_video_private")),
        Call("live_session", "GET", "session/live", ("public_hostid",)),
        Call("live_sessions", "GET", "session/live/list"),
        Call("public_host_id", "GET", "host/id/public", ("private_hostid",)),
        Call("private_host_id", "GET", "host/id/private", ("public_hostid",)),
        Call("video_recordings", "GET", "video/list", (), ("public_hostid", "start_date", "end_date")),
        Call("themes", "GET", "theme/list"),
    )
}
BY_PATH = {call.path: call for call in CALLS.values()}
