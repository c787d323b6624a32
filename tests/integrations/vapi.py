"""Posting VAPI's server messages (the fixtures in fixtures/vapi/) to a running Tron."""

import json
from pathlib import Path

import httpx2

FIXTURES = Path(__file__).parent / "fixtures" / "vapi"
CALL_ID = "call-xyz-1"
CALLER = "+14155551234"
OUR_NUMBER = "+14155550100"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def post_vapi(server, message: dict | str | bytes, headers: dict | None = None):
    """POST one server message: a fixture's name, a dict, or raw bytes (malformed on purpose)."""
    if isinstance(message, str):
        message = fixture(message)
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return httpx2.post(
        f"{server.url}/vapi/events",
        content=body,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=30,
    )


def vapi_chat(sdk, text: str, *, call_id: str = CALL_ID, number: str | None = CALLER, history=(), **extra):
    """A chat request as VAPI's custom LLM sends it: its history, and the call in the body."""
    call = {"id": call_id, **({"customer": {"number": number}} if number else {})}
    messages = [{"role": "system", "content": "You are Tony."}, *history, {"role": "user", "content": text}]
    return sdk.chat.completions.with_raw_response.create(
        model="tony", messages=messages, extra_body={"call": call}, **extra
    )
