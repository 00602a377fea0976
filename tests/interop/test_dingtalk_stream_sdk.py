"""Interoperability: the official Stream-mode SDK (PyPI `dingtalk-stream` 0.24.3, the
"PY-STREAM" of shared/protocols/dingtalk.md §5.2) against the dingbridge DingTalk sandbox's
Stream gateway.

The SDK's own loop (`DingTalkStreamClient.start`) opens the connection
(`POST /v1.0/gateway/connections/open` with clientId/clientSecret and an `EVENT *`
subscription), connects the WebSocket at the returned endpoint with `?ticket=`, and answers
every downstream frame with an ACK after the handler returns. A person created through the
oapi (plain requests) makes the sandbox emit `user_add_org`; the handler receives it and
returns 200 OK; the sandbox must list that ACK (admin API) and count the event as delivered.

Host override: the SDK hard-codes the gateway URL in the class attribute
`DingTalkStreamClient.OPEN_CONNECTION_API` (built at import time from
`dingtalk_stream.utils.DINGTALK_OPENAPI_ENDPOINT`, itself read from the environment variable
`DINGTALK_OPENAPI_ENDPOINT` only when the module is first imported). The fixture below
MONKEYPATCHES that class attribute, and the module-level `DINGTALK_OPENAPI_ENDPOINT` that
`get_access_token()` uses, to the sandbox. Settings: see conftest.py.
"""

import asyncio
import threading
import time

import dingtalk_stream
import dingtalk_stream.stream
import pytest

# `DingTalkStreamClient.start()` names `websockets.exceptions.ConnectionClosedError` in an
# `except` clause; websockets ≥ 14 loads that submodule lazily, so before the first connection
# (e.g. while the gateway refuses) evaluating the clause raised AttributeError and killed the
# SDK's loop. Importing it here keeps the SDK's own retry loop working.
import websockets.exceptions  # noqa: F401
from dingtalk_stream import AckMessage, Credential, DingTalkStreamClient, EventHandler

WAIT = 15  # seconds for the connection and for the event


class Recorder(EventHandler):
    """Keeps every event and answers 200 OK (the SDK's default handler answers 404)."""

    def __init__(self):
        super().__init__()
        self.events = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)

    async def process(self, event):
        with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()
        return AckMessage.STATUS_OK, "OK"

    def wait_for(self, predicate, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = [e for e in self.events if predicate(e)]
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self.arrived.wait(left)


def _admin_list(sandbox, name):
    """`GET /_sandbox/dingtalk/stream/<name>` → its list (`connections`, `acks`, `deliveries`)."""
    return sandbox.admin_get(f"stream/{name}")[name]


@pytest.fixture
def stream_client(fresh_dingtalk, monkeypatch):
    sandbox = fresh_dingtalk
    # MONKEYPATCH: the SDK hard-codes https://api.dingtalk.com (see the module docstring).
    monkeypatch.setattr(
        DingTalkStreamClient, "OPEN_CONNECTION_API", f"{sandbox.api_url}/v1.0/gateway/connections/open"
    )
    monkeypatch.setattr(dingtalk_stream.stream, "DINGTALK_OPENAPI_ENDPOINT", sandbox.api_url)

    client = DingTalkStreamClient(Credential(sandbox.app_key, sandbox.app_secret))
    recorder = Recorder()
    client.register_all_event_handler(recorder)

    loop = asyncio.new_event_loop()
    task_box = {}

    def run():
        asyncio.set_event_loop(loop)
        task_box["task"] = loop.create_task(client.start())
        try:
            loop.run_until_complete(task_box["task"])
        except (asyncio.CancelledError, RuntimeError):
            pass

    thread = threading.Thread(target=run, name="dingtalk-stream-sdk", daemon=True)
    thread.start()
    try:
        yield sandbox, client, recorder
    finally:
        # `start()` swallows one CancelledError (it sleeps 10 s and reconnects): cancel until
        # the task is really done; leaving `async with websockets.connect` closes the socket.
        deadline = time.monotonic() + 10
        while thread.is_alive() and time.monotonic() < deadline:
            task = task_box.get("task")
            if task is not None:
                loop.call_soon_threadsafe(task.cancel)
            thread.join(0.1)
        assert not thread.is_alive(), "the Stream SDK's loop did not stop"
        # The SDK's keep-alive pinger is still pending: end it, then close the loop.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


def test_stream_event_received_and_acked(stream_client):
    sandbox, client, recorder = stream_client

    # The SDK connected: it holds an open WebSocket, and the sandbox lists the connection.
    deadline = time.monotonic() + WAIT
    while client.websocket is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.websocket is not None, "the SDK did not connect to the sandbox's Stream gateway"
    connections = _admin_list(sandbox, "connections")
    mine = [c for c in connections if c["app_key"] == sandbox.app_key and c["state"] == "open"]
    assert len(mine) == 1, connections
    assert {"type": "EVENT", "topic": "*"} in mine[0]["subscriptions"], mine[0]
    assert mine[0]["ua"].startswith("dingtalk-sdk-python/"), mine[0]

    # A person created through the API makes the sandbox emit user_add_org (§5.1).
    created = sandbox.oapi(
        "/topapi/v2/user/create",
        {"name": "诸葛明月", "mobile": "13911112222", "dept_id_list": "5", "title": "流式推送测试"},
    )["result"]
    userid = created["userid"]

    got = recorder.wait_for(
        lambda e: e.headers.event_type == "user_add_org" and userid in (e.data or {}).get("userId", [])
    )
    assert got, f"no user_add_org for {userid} within {WAIT}s; received {[str(e) for e in recorder.events]}"
    event = got[0]
    assert event.headers.event_corp_id == sandbox.corp_id
    assert event.headers.event_id
    assert event.headers.message_id

    # The sandbox recorded the SDK's ACK for that messageId (code 200, counted as delivered).
    deadline = time.monotonic() + WAIT
    acked = []
    while not acked and time.monotonic() < deadline:
        acked = [a for a in _admin_list(sandbox, "acks") if a["message_id"] == event.headers.message_id]
        if not acked:
            time.sleep(0.1)
    assert len(acked) == 1, _admin_list(sandbox, "acks")
    ack = acked[0]
    assert ack["code"] == 200, ack
    assert ack["accepted"] is True, ack
    assert (ack["type"], ack["event_id"], ack["message"]) == ("EVENT", event.headers.event_id, "OK"), ack

    deliveries = [d for d in _admin_list(sandbox, "deliveries") if d["event_id"] == event.headers.event_id]
    assert [d["status"] for d in deliveries] == ["delivered"], deliveries
    # ACKed at once: pushed once, under the messageId the SDK answered.
    assert deliveries[0]["pushes"] == 1, deliveries[0]
    assert deliveries[0]["message_ids"] == [event.headers.message_id], deliveries[0]
