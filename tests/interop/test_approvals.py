"""Interoperability: the approval flows of examples/dingbridge.toml, from the outside.

A hub (`dingbridge serve`, the real binary) runs the example configuration with its `dingtalk`
and `kingdee` connections pointed at the sandboxes scripts/interop started, a scratch SQLite
store, and the `oa` connection pointed at a webhook receiver in this module (python
`http.server`) that verifies every Standard Webhooks signature with hmac/hashlib against the
`hmac_secret` of the example. Both simulators are reset to their seed first, and the org sync
runs first (`dingbridge sync run org_to_kingdee`): the bills refer to employees and departments.

Then, as an in-house system and as DingTalk would:
- an API key is created with `dingbridge keys create … --json`;
- one 费用报销 is started over the hub's REST API (`POST /api/v1/approvals`, python
  `requests`, a Chinese form, the originator by job number): 201 with the DingTalk instance id;
- another is started in DingTalk directly with the official SDK (PyPI `alibabacloud-dingtalk`,
  `workflow_1_0` `start_process_instance`);
- both are approved with the simulator's admin API; each becomes an audited Kingdee
  `ER_ExpReimbursement`, read with the official Kingdee SDK (PyPI `kingdee-cdp-webapi-sdk`,
  `ExecuteBillQuery` filtered on the extension field `F_DDInstanceId`: FBillNo, FDocumentStatus
  C, FProposerID.FNumber = the originator's job number), and the bill number is commented on
  the approval (`get_process_instance` through the DingTalk SDK shows the `ADD_REMARK`);
- the receiver got approval.started … approval.completed for the REST-started approval, every
  signature valid, in order, and nothing for the one started in DingTalk;
- a wrong key is refused with 401 and a wrong form value with 422 naming the field.

Settings: see conftest.py (DINGTALK_*, KINGDEE_*, DINGBRIDGE_BIN).
"""

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from alibabacloud_dingtalk.oauth2_1_0 import models as oauth_models
from alibabacloud_dingtalk.oauth2_1_0.client import Client as OAuthClient
from alibabacloud_dingtalk.workflow_1_0 import models as wf
from alibabacloud_dingtalk.workflow_1_0.client import Client as WorkflowClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models
from conftest import EXAMPLE_CONFIG, dingbridge_bin, example_config
from k3cloud_webapi_sdk.main import K3CloudApiSdk

EXPENSE = "PROC-SBX-FYBX-7C1F3A9E-0001"  # 费用报销 (docs/sandbox.md, approval templates)
TEMPLATE = "expense"  # its alias in [flows.approvals.options.templates]
WEBHOOK_PATH = "/hooks/dingtalk-approvals"  # [flows.approvals.options] webhook path
TEAM = 5  # the seed's 后端组
RUNTIME = util_models.RuntimeOptions()
WAIT = 90  # seconds for a bill, a comment or a webhook to appear

FORM = {
    "报销事由": "深圳客户现场支持（含往返机票）",
    "报销类别": "差旅报销",
    "费用明细": [
        {"费用类型": "差旅费", "金额（元）": 1860.5, "发生日期": "2026-03-02", "费用说明": "杭州—深圳往返机票"},
        {"费用类型": "招待费", "金额（元）": 420, "费用说明": "客户工作餐"},
    ],
    "报销总金额（元）": 2280.5,
}


# ---- the OA system's webhook receiver -------------------------------------------------------


def standard_webhooks_error(key: bytes, headers, body: bytes, now: float, tolerance: int = 300):
    """Why a request's Standard Webhooks signature does not verify, or None when it does."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        return "a webhook-* header is missing"
    try:
        sent = int(timestamp)
    except ValueError:
        return "webhook-timestamp is not Unix seconds"
    if abs(now - sent) > tolerance:
        return f"webhook-timestamp is {abs(now - sent):.0f} s away from now"
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return None
    return "no v1 signature matches"


def whsec_key(secret: str) -> bytes:
    """The bytes of a `whsec_<base64>` secret (anything else is used as bytes, as the hub does)."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_") :])
    return secret.encode()


class WebhookReceiver:
    """Accepts POSTs, verifies their signature, records them in arrival order."""

    def __init__(self, secret: str):
        self.key = whsec_key(secret)
        self.lock = threading.Lock()
        self.messages = []  # accepted: {id, timestamp, path, type, data}
        self.refused = []  # {path, error}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                error = standard_webhooks_error(receiver.key, self.headers, body, time.time())
                with receiver.lock:
                    if error:
                        receiver.refused.append({"path": self.path, "error": error})
                    else:
                        message = json.loads(body)
                        receiver.messages.append(
                            {
                                "id": self.headers["webhook-id"],
                                "timestamp": int(self.headers["webhook-timestamp"]),
                                "path": self.path,
                                "type": message.get("type"),
                                "data": message.get("data") or {},
                            }
                        )
                self.send_response(401 if error else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def of(self, approval_id: str):
        with self.lock:
            return [m for m in self.messages if m["data"].get("approval_id") == approval_id]

    def all(self):
        with self.lock:
            return list(self.messages), list(self.refused)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_receiver_verifies_the_standard_webhooks_reference_vector():
    """The receiver's check agrees with the Standard Webhooks reference vector (the same one
    engine::webhook's tests sign), so a valid hub signature means a correct one."""
    key = whsec_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    body = b'{"test": 2432232314}'
    assert standard_webhooks_error(key, headers, body, 1614265330) is None
    assert standard_webhooks_error(key, headers, body + b" ", 1614265330) == "no v1 signature matches"
    assert "away from now" in standard_webhooks_error(key, headers, body, 1614265330 + 301)
    rotated = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    assert standard_webhooks_error(key, rotated, body, 1614265330) is None


# ---- the hub on the example configuration ---------------------------------------------------


@pytest.fixture(scope="module")
def sandboxes(fresh_dingtalk, kingdee_sandbox):
    """Both simulators back at their seed for this module."""
    kingdee_sandbox.admin_post("reset")
    return fresh_dingtalk, kingdee_sandbox


@pytest.fixture(scope="module")
def receiver():
    example = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    r = WebhookReceiver(example["connections"]["oa"]["hmac_secret"])
    yield r
    r.close()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("approvals")


@pytest.fixture(scope="module")
def config(sandboxes, receiver, work):
    dingtalk, kingdee = sandboxes
    text = example_config(dingtalk, kingdee, f"sqlite://{work / 'dingbridge.sqlite'}", oa=receiver.url)
    path = work / "dingbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def env():
    return {k: v for k, v in os.environ.items() if k != "DINGBRIDGE_CONFIG"}


def cli(config, *args, timeout=180):
    proc = subprocess.run(
        [dingbridge_bin(), "--lang", "en", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
    )
    assert proc.returncode == 0, f"dingbridge {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def org_sync(config):
    """The company in Kingdee first: the bills refer to its employees and departments."""
    summary = json.loads(cli(config, "sync", "run", "org_to_kingdee", "--mode", "full", "--json"))
    assert summary["status"] == "success", summary
    return summary


@pytest.fixture(scope="module")
def api_key(config, org_sync):
    created = json.loads(
        cli(config, "keys", "create", "报销系统（互操作测试）", "--scope", "approvals:write", "--scope", "approvals:read", "--json")
    )
    assert created["key"].startswith(f"dbk_{created['prefix']}_"), created
    assert sorted(created["scopes"]) == ["approvals:read", "approvals:write"], created
    assert "hash" not in created
    return created["key"]


@pytest.fixture(scope="module")
def hub(config, api_key, work):
    """`dingbridge serve` on the configuration; its base URL."""
    log_path = work / "serve.log"
    log = open(log_path, "w", encoding="utf-8")
    proc = subprocess.Popen(
        [dingbridge_bin(), "--lang", "en", "serve", "-c", str(config), "--listen", "127.0.0.1:0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env(),
    )
    url = None
    for _ in range(300):
        m = re.search(r"node listening on (http://\S+)", log_path.read_text(encoding="utf-8"))
        if m:
            url = m.group(1)
            break
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    if url is None:
        proc.kill()
        pytest.fail(f"dingbridge serve did not start:\n{log_path.read_text(encoding='utf-8')[-4000:]}", pytrace=False)
    for _ in range(100):
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


# ---- the two approvals ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def people(sandboxes):
    """Two members of 后端组 with job numbers (plain requests, set-up only)."""
    dingtalk, _ = sandboxes
    page = dingtalk.oapi("/topapi/v2/user/list", {"dept_id": TEAM, "cursor": 0, "size": 100})["result"]
    users = [u for u in page["list"] if u.get("job_number")]
    assert len(users) >= 2, page
    return users[0], users[1]


@pytest.fixture(scope="module")
def wf_config(sandboxes):
    dingtalk, _ = sandboxes
    return open_api_models.Config(endpoint=dingtalk.api_host, protocol="http")


@pytest.fixture(scope="module")
def wf_headers(wf_config, sandboxes):
    dingtalk, _ = sandboxes
    token = (
        OAuthClient(wf_config)
        .get_access_token(oauth_models.GetAccessTokenRequest(app_key=dingtalk.app_key, app_secret=dingtalk.app_secret))
        .body.access_token
    )
    return dict(x_acs_dingtalk_access_token=token)


def get_instance(wf_config, wf_headers, instance_id):
    body = (
        WorkflowClient(wf_config)
        .get_process_instance_with_options(
            wf.GetProcessInstanceRequest(process_instance_id=instance_id),
            wf.GetProcessInstanceHeaders(**wf_headers),
            RUNTIME,
        )
        .body
    )
    assert body.success == "true"
    return body.result


def start_over_api(hub, key, body, idempotency_key=None):
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return requests.post(f"{hub}/api/v1/approvals", json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def rest_approval(hub, api_key, people):
    """A 费用报销 started over the REST API; (response, its JSON)."""
    originator, _ = people
    r = start_over_api(
        hub,
        api_key,
        {
            "template": TEMPLATE,
            "originator": {"job_number": originator["job_number"]},
            "business_key": "BX-INTEROP-0001",
            "form": FORM,
        },
        idempotency_key="interop-BX-INTEROP-0001",
    )
    return r, (r.json() if r.headers.get("content-type", "").startswith("application/json") else None)


@pytest.fixture(scope="module")
def sdk_instance(hub, wf_config, wf_headers, people):
    """A 费用报销 started in DingTalk directly with the official SDK; its instance id."""
    _, originator = people
    V = wf.StartProcessInstanceRequestFormComponentValues
    details = [
        [{"name": "费用类型", "value": "交通费"}, {"name": "金额（元）", "value": "238.00"}, {"name": "费用说明", "value": "机场往返打车"}],
        [{"name": "费用类型", "value": "办公费"}, {"name": "金额（元）", "value": "96.50"}],
    ]
    started = WorkflowClient(wf_config).start_process_instance_with_options(
        wf.StartProcessInstanceRequest(
            process_code=EXPENSE,
            originator_user_id=originator["userid"],
            dept_id=TEAM,
            form_component_values=[
                V(name="报销事由", value="客户演示会交通与资料打印"),
                V(name="报销类别", value="日常报销"),
                V(name="费用明细", value=json.dumps(details, ensure_ascii=False)),
                V(name="报销总金额（元）", value="334.50"),
            ],
        ),
        wf.StartProcessInstanceHeaders(**wf_headers),
        RUNTIME,
    )
    assert started.body.instance_id
    return started.body.instance_id


@pytest.fixture(scope="module")
def approved(sandboxes, rest_approval, sdk_instance):
    """Both approvals agreed by every approver (the simulator's admin API)."""
    dingtalk, _ = sandboxes
    _, created = rest_approval
    assert created and created.get("instance_id"), rest_approval[0].text
    instances = {"rest": created["instance_id"], "sdk": sdk_instance}
    for instance_id in instances.values():
        done = dingtalk.admin_post(f"approvals/{instance_id}/approve", {"remark": "同意"})
        assert (done["status"], done["result"]) == ("COMPLETED", "agree"), done
    return instances


@pytest.fixture(scope="module")
def kingdee_api(sandboxes):
    _, kingdee = sandboxes
    api = K3CloudApiSdk(kingdee.url)
    api.InitConfig(kingdee.acct_id, kingdee.user_name, kingdee.app_id, kingdee.app_secret, kingdee.url, lcid=2052, org_num=0)
    return api


BILL_KEYS = ["FBillNo", "FDocumentStatus", "FProposerID.FNumber", "FRequestDeptID.FNumber", "FExpAmountSum", "F_DDInstanceId"]


@pytest.fixture(scope="module")
def bills(approved, kingdee_api):
    """{"rest"|"sdk": the bill's fields} once both bills are audited (Kingdee SDK)."""
    found, rows = {}, {}
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for name, instance_id in approved.items():
            raw = kingdee_api.ExecuteBillQuery(
                {
                    "FormId": "ER_ExpReimbursement",
                    "FieldKeys": ",".join(BILL_KEYS),
                    "FilterString": f"F_DDInstanceId = '{instance_id}'",
                }
            )
            assert ',"IsSuccess":false,' not in raw, raw
            rows[name] = json.loads(raw)
            if len(rows[name]) == 1 and rows[name][0][1] == "C":
                found[name] = dict(zip(BILL_KEYS, rows[name][0]))
        if len(found) == len(approved):
            return found
        time.sleep(0.5)
    pytest.fail(f"no audited bill for every approval within {WAIT} s: {rows}", pytrace=False)


# ---- the tests ------------------------------------------------------------------------------


def test_rest_start_answers_201_with_the_dingtalk_instance(rest_approval, wf_config, wf_headers, people):
    r, created = rest_approval
    assert r.status_code == 201, r.text
    assert created["id"].startswith("apv_"), created
    assert created["instance_id"], created
    assert (created["status"], created["flow"], created["process_code"], created["business_key"]) == (
        "running",
        "approvals",
        EXPENSE,
        "BX-INTEROP-0001",
    ), created
    assert r.headers["Location"] == f"/api/v1/approvals/{created['id']}"
    # DingTalk (read with its SDK) has the instance: the job number became the userid, and the
    # plain JSON form became DingTalk's form values, Chinese text intact.
    inst = get_instance(wf_config, wf_headers, created["instance_id"])
    originator, _ = people
    assert inst.originator_user_id == originator["userid"]
    values = {v.name: v.value for v in inst.form_component_values}
    assert values["报销事由"] == FORM["报销事由"], values
    assert values["报销类别"] == "差旅报销", values
    assert "杭州—深圳往返机票" in values["费用明细"], values


def test_the_same_idempotency_key_replays_the_first_answer(hub, api_key, rest_approval, people):
    _, created = rest_approval
    originator, _ = people
    again = start_over_api(
        hub,
        api_key,
        {
            "template": TEMPLATE,
            "originator": {"job_number": originator["job_number"]},
            "business_key": "BX-INTEROP-0001",
            "form": FORM,
        },
        idempotency_key="interop-BX-INTEROP-0001",
    )
    assert again.status_code == 201, again.text
    assert again.headers.get("Idempotent-Replayed") == "true", dict(again.headers)
    assert again.json()["id"] == created["id"]


def test_both_approvals_become_audited_kingdee_bills(bills, people):
    rest_originator, sdk_originator = people
    assert bills["rest"]["FBillNo"] != bills["sdk"]["FBillNo"]
    for name, originator, total in [("rest", rest_originator, 2280.5), ("sdk", sdk_originator, 334.5)]:
        bill = bills[name]
        assert bill["FBillNo"].startswith("FYBX"), bill
        assert bill["FDocumentStatus"] == "C", bill
        assert bill["FProposerID.FNumber"] == originator["job_number"], bill
        assert bill["FRequestDeptID.FNumber"] == f"DT{TEAM}", bill
        assert float(bill["FExpAmountSum"]) == pytest.approx(total), bill


def test_the_bill_number_is_commented_on_each_approval(bills, approved, wf_config, wf_headers):
    deadline = time.monotonic() + WAIT
    remarks = {}
    while time.monotonic() < deadline:
        for name, instance_id in approved.items():
            inst = get_instance(wf_config, wf_headers, instance_id)
            assert (inst.status, inst.result) == ("COMPLETED", "agree")
            remarks[name] = [r.remark for r in inst.operation_records if r.type == "ADD_REMARK"]
        if all(any(bills[n]["FBillNo"] in (r or "") for r in remarks[n]) for n in approved):
            break
        time.sleep(0.5)
    for name in approved:
        # Exactly one comment: the bill number, in the flow's comment_text.
        assert remarks[name] == [f"已生成金蝶费用报销单 {bills[name]['FBillNo']}"], (name, remarks)


def test_the_oa_receives_every_change_of_the_rest_approval_signed_and_in_order(receiver, rest_approval, approved, bills):
    _, created = rest_approval
    deadline = time.monotonic() + WAIT
    got = []
    while time.monotonic() < deadline:
        got = receiver.of(created["id"])
        if got and got[-1]["type"] == "approval.completed":
            break
        time.sleep(0.3)
    types = [m["type"] for m in got]
    # The template's default chain has two steps: each task starts, then is agreed.
    assert types == [
        "approval.started",
        "approval.task.started",
        "approval.task.finished",
        "approval.task.started",
        "approval.task.finished",
        "approval.completed",
    ], types
    messages, refused = receiver.all()
    assert refused == [], refused
    assert len({m["id"] for m in got}) == len(got), [m["id"] for m in got]
    for m in got:
        assert m["path"] == WEBHOOK_PATH, m
        assert m["data"]["business_key"] == "BX-INTEROP-0001", m
        assert m["data"]["instance_id"] == created["instance_id"], m
        assert m["data"]["flow"] == "approvals", m
    assert [m["data"]["task"]["result"].lower() for m in got if m["type"] == "approval.task.finished"] == ["agree", "agree"]
    assert got[-1]["data"]["result"] == "agree", got[-1]
    assert got[0]["data"]["title"].endswith("提交的费用报销"), got[0]
    # The approval started in DingTalk is not one of the OA's: nothing about it is pushed.
    assert not [m for m in messages if m["data"].get("instance_id") == approved["sdk"]], messages


def test_the_rest_api_reads_the_outcome(hub, api_key, rest_approval, bills):
    _, created = rest_approval
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        r = requests.get(f"{hub}/api/v1/approvals/{created['id']}", headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] == "completed":
            break
        time.sleep(0.3)
    assert (body["status"], body["result"], body["business_key"]) == ("completed", "agree", "BX-INTEROP-0001"), body


def test_a_wrong_key_is_401(hub, api_key, people):
    originator, _ = people
    body = {"template": TEMPLATE, "originator": {"job_number": originator["job_number"]}, "form": FORM}
    prefix = api_key.split("_")[1]
    for key in [f"dbk_{prefix}_{'x' * 32}", "dbk_zzzzzzzz_0123456789abcdef0123", "not-a-key"]:
        r = start_over_api(hub, key, body)
        assert r.status_code == 401, (key, r.status_code, r.text)
        assert r.json()["error"]["code"] == "unauthorized", r.text
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), dict(r.headers)
    r = requests.post(f"{hub}/api/v1/approvals", json=body, timeout=10)
    assert r.status_code == 401, r.text


def test_a_wrong_form_value_is_422_naming_the_field(hub, api_key, people, sandboxes):
    originator, _ = people
    dingtalk, _ = sandboxes
    instances_before = len(dingtalk.admin_get("instances")["instances"])
    form = {**FORM, "报销类别": "出国报销"}  # not one of 差旅报销 / 日常报销 / 项目报销
    del form["报销事由"]  # required
    r = start_over_api(
        hub,
        api_key,
        {"template": TEMPLATE, "originator": {"job_number": originator["job_number"]}, "form": form},
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_fields", error
    fields = {f["field"]: f for f in error["fields"]}
    # Both wrong fields in one answer, each named, with a reason in English and Chinese.
    assert {"form.报销类别", "form.报销事由"} <= set(fields), error
    assert "差旅报销" in fields["form.报销类别"]["reason"] + fields["form.报销类别"]["reason_zh"], error
    assert all(f["reason"] and f["reason_zh"] for f in fields.values()), error
    # Nothing was started in DingTalk.
    assert len(dingtalk.admin_get("instances")["instances"]) == instances_before
