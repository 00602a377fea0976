"""Interoperability: PyPI `dingtalk-sdk` 1.3.8 (module `dingtalk`, the "GZS" of
shared/protocols/dingtalk.md) against the dingbridge DingTalk sandbox and the hub.

- oapi token: `AppKeyClient.get_access_token()` (`GET /gettoken?appkey&appsecret`, §1.2), its
  token cache, and its refresh-and-retry on an expired token (it drops the cached token on
  33001/40001/42001/40014 and calls again: `DingTalkClient._handle_request_except`).
- Contacts with Chinese names (§2) through the SDK's client: token in `?access_token=`, JSON
  body encoded with `ensure_ascii=False`, `errcode` ≠ 0 raised as `DingTalkClientException`.
  The SDK's named helpers (`client.department.list()`, `client.user.get()`) call the legacy
  paths `/department/list`, `/user/get`, which DingTalk has retired and the sandbox does not
  serve, so the current `/topapi/v2/…` paths go through the SDK's generic `client.post(uri,
  data)` — the same request pipeline the helpers use.
- Callback crypto round trip (§5.1) against the hub: an event encrypted and signed with the
  SDK's `dingtalk.crypto.DingTalkCrypto` exactly as DingTalk pushes it, POSTed to
  `{DINGBRIDGE_URL}/callbacks/dingtalk/dingtalk`, and the hub's encrypted `success` reply
  verified and decrypted with the SDK.

Base URL: the SDK hard-codes `BaseClient.API_BASE_URL = 'https://oapi.dingtalk.com/'` and joins
every relative path onto it; `SandboxClient` below overrides that class attribute (no
monkeypatching of the SDK module). Settings: see conftest.py.
"""

import json
import time

import pytest
import requests
from dingtalk.client import AppKeyClient
from dingtalk.core.exceptions import DingTalkClientException, InvalidSignatureException
from dingtalk.core.utils import random_string
from dingtalk.crypto import DingTalkCrypto

# The connection name in the hub's config (scripts/interop copies the sandbox's
# `[connections.dingtalk]` block as it is).
HUB_CONNECTION = "dingtalk"


def make_client(sandbox):
    class SandboxClient(AppKeyClient):
        # The SDK's own override point: every relative API path is joined onto this.
        API_BASE_URL = sandbox.url + "/"

    return SandboxClient(sandbox.corp_id, sandbox.app_key, sandbox.app_secret)


@pytest.fixture(scope="module")
def sandbox(fresh_dingtalk):
    return fresh_dingtalk


@pytest.fixture(scope="module")
def client(sandbox):
    return make_client(sandbox)


def has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_oapi_token(sandbox, client):
    raw = client.get_access_token()
    assert raw["errcode"] == 0
    assert raw["expires_in"] == 7200
    token = client.access_token  # cached by the SDK
    assert token == raw["access_token"]  # same token while valid (§1.2)
    assert client.access_token == token
    assert sandbox.oapi_token() == token
    wrong = make_client(sandbox)
    wrong.app_secret = "wrong-secret"
    with pytest.raises(DingTalkClientException) as err:
        wrong.get_access_token()
    assert err.value.errcode == 40089, err.value


def test_department_tree(sandbox, client):
    top = client.post("/topapi/v2/department/listsub", {"dept_id": 1})["result"]
    names = [d["name"] for d in top]
    assert "研发中心" in names and "财务部" in names, names
    assert all(d["parent_id"] == 1 for d in top)
    # Walk the whole tree with listsubid + get, as a sync would (§2).
    # Paced below the standard edition's 20 calls/s per API (§7): the SDK does not retry 90018.
    def paced(uri, data):
        time.sleep(0.06)
        return client.post(uri, data)["result"]

    seen, depth_of, queue = {}, {1: 0}, [1]
    while queue:
        parent = queue.pop(0)
        ids = paced("/topapi/v2/department/listsubid", {"dept_id": parent})["dept_id_list"]
        for dept_id in ids:
            dept = paced("/topapi/v2/department/get", {"dept_id": dept_id})
            assert dept["dept_id"] == dept_id and dept["parent_id"] == parent, dept
            assert has_chinese(dept["name"]), dept
            seen[dept_id] = dept
            depth_of[dept_id] = depth_of[parent] + 1
            queue.append(dept_id)
    assert len(seen) + 1 == sandbox.admin_get("state")["departments"]  # + the root
    assert max(depth_of.values()) >= 4, depth_of
    backend = client.post("/topapi/v2/department/get", {"dept_id": 5})["result"]
    assert (backend["name"], backend["parent_id"]) == ("后端组", 4)
    with pytest.raises(DingTalkClientException) as err:
        client.post("/topapi/v2/department/get", {"dept_id": 999999})
    assert err.value.errcode == 60003


def test_users(sandbox, client):
    backend = client.post("/topapi/v2/department/get", {"dept_id": 5})["result"]
    # Cursor paging with a small page (§2: size 1..100, next_cursor while has_more).
    users, cursor, pages = [], 0, 0
    while True:
        page = client.post("/topapi/v2/user/list", {"dept_id": 5, "cursor": cursor, "size": 2})["result"]
        users += page["list"]
        pages += 1
        if not page["has_more"]:
            assert "next_cursor" not in page
            break
        cursor = page["next_cursor"]
    assert len(users) == backend["member_count"] and pages >= 2, (len(users), backend)
    assert len({u["userid"] for u in users}) == len(users)
    ids = client.post("/topapi/user/listid", {"dept_id": 5})["result"]["userid_list"]
    assert sorted(ids) == sorted(u["userid"] for u in users)
    for listed in users:
        assert has_chinese(listed["name"]), listed
        assert 5 in listed["dept_id_list"]
    person = client.post("/topapi/v2/user/get", {"userid": users[0]["userid"]})["result"]
    assert (person["name"], person["mobile"], person["unionid"]) == (
        users[0]["name"], users[0]["mobile"], users[0]["unionid"],
    )
    assert person["title"] and has_chinese(person["title"]), person
    by_union = client.post("/topapi/user/getbyunionid", {"unionid": person["unionid"]})["result"]
    assert by_union["userid"] == person["userid"]

    # A person created through the SDK (Chinese name, title, work place) reads back as sent.
    created = client.post(
        "/topapi/v2/user/create",
        {
            "name": "欧阳晓雯",
            "mobile": "13912345678",
            "dept_id_list": "5",
            "job_number": "SDK0001",
            "title": "高级工程师（后端）",
            "work_place": "杭州·西溪园区",
        },
    )["result"]
    got = client.post("/topapi/v2/user/get", {"userid": created["userid"]})["result"]
    assert (got["name"], got["title"], got["work_place"]) == ("欧阳晓雯", "高级工程师（后端）", "杭州·西溪园区")
    assert got["unionid"] == created["unionId"]

    with pytest.raises(DingTalkClientException) as err:
        client.post("/topapi/v2/user/get", {"userid": "no-such-user"})
    assert err.value.errcode == 33012
    with pytest.raises(DingTalkClientException) as err:
        client.post("/topapi/v2/user/list", {"dept_id": 5, "cursor": 0, "size": 101})
    assert err.value.errcode == 400002


def test_sdk_refreshes_an_expired_token(sandbox, client):
    before = client.access_token
    sandbox.admin_post("tokens/expire", {"app_key": sandbox.app_key})
    sandbox.admin_post("counters/reset")
    # The SDK still holds the old token: the sandbox answers 42001, the SDK drops its cache,
    # fetches a new token and repeats the call once.
    result = client.post("/topapi/v2/department/get", {"dept_id": 5})["result"]
    assert result["name"] == "后端组"
    assert client.access_token != before
    counters = sandbox.admin_get("counters")
    assert counters["errors"].get("42001") == 1, counters
    assert counters["calls"]["/gettoken"] == 1, counters
    assert counters["calls"]["/topapi/v2/department/get"] == 2, counters


def _post_to_hub(hub_url, crypto, plaintext: str, tamper: bool = False):
    """Push `plaintext` the way DingTalk does (§5.1): `POST <url>?signature&timestamp&nonce`
    with `{"encrypt": …}`, AES key from the EncodingAESKey, owner key = the AppKey (events
    configured in the developer console for an internal app), millisecond timestamp."""
    sealed = crypto.encrypt_message(plaintext, nonce=random_string(16), timestamp=int(time.time() * 1000))
    signature = sealed["msg_signature"]
    if tamper:
        signature = ("0" if signature[0] != "0" else "1") + signature[1:]
    return requests.post(
        f"{hub_url}/callbacks/dingtalk/{HUB_CONNECTION}",
        params={"signature": signature, "timestamp": sealed["timeStamp"], "nonce": sealed["nonce"]},
        json={"encrypt": sealed["encrypt"]},
        timeout=10,
    )


def _open_reply(crypto, response) -> str:
    assert response.status_code == 200, (response.status_code, response.text)
    body = response.json()
    assert set(body) >= {"msg_signature", "timeStamp", "nonce", "encrypt"}, body
    # decrypt_encrypt_str checks the signature first (InvalidSignatureException), then the
    # owner key at the end of the plaintext (InvalidCorpIdOrSuiteKeyException).
    return crypto.decrypt_encrypt_str(body["msg_signature"], body["timeStamp"], body["nonce"], body["encrypt"])


def test_callback_crypto_round_trip_with_the_hub(sandbox, client, hub_url):
    crypto = DingTalkCrypto(sandbox.callback_token, sandbox.aes_key, sandbox.app_key)

    # 1. The URL check the developer console sends when the callback URL is saved.
    assert _open_reply(crypto, _post_to_hub(hub_url, crypto, json.dumps({"EventType": "check_url"}))) == "success"

    # 2. A real event: a person created through the API makes the sandbox emit user_add_org;
    #    its payload is pushed to the hub sealed by the SDK (Chinese text inside the cipher).
    created = client.post(
        "/topapi/v2/user/create",
        {"name": "司马云舒", "mobile": "13987654321", "dept_id_list": "5", "title": "回调测试工程师"},
    )["result"]
    events = sandbox.admin_get("events")["events"]
    added = [e for e in events if e["event_type"] == "user_add_org" and created["userid"] in e["payload"].get("userId", [])]
    assert len(added) == 1, events
    payload = dict(added[0]["payload"], note="钉钉推送：新员工入职")
    plaintext = json.dumps(payload, ensure_ascii=False)
    assert _open_reply(crypto, _post_to_hub(hub_url, crypto, plaintext)) == "success"
    # The same event again (DingTalk retries, §5.1): acknowledged again.
    assert _open_reply(crypto, _post_to_hub(hub_url, crypto, plaintext)) == "success"

    # 3. A wrong signature is refused with a 4xx and no `success` reply.
    refused = _post_to_hub(hub_url, crypto, plaintext, tamper=True)
    assert 400 <= refused.status_code < 500, (refused.status_code, refused.text)
    assert "encrypt" not in refused.text

    # 4. A reply sealed for another owner key does not open: the SDK really checks it.
    other = DingTalkCrypto(sandbox.callback_token, sandbox.aes_key, "some-other-app-key")
    reply = _post_to_hub(hub_url, crypto, json.dumps({"EventType": "check_url"})).json()
    with pytest.raises(Exception):
        other.decrypt_encrypt_str(reply["msg_signature"], reply["timeStamp"], reply["nonce"], reply["encrypt"])
    wrong_token = DingTalkCrypto("not-the-token", sandbox.aes_key, sandbox.app_key)
    with pytest.raises(InvalidSignatureException):
        wrong_token.decrypt_encrypt_str(reply["msg_signature"], reply["timeStamp"], reply["nonce"], reply["encrypt"])
