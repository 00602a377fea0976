"""Interoperability: the official DingTalk v1.0 SDK (PyPI `alibabacloud-dingtalk` 2.2.65, the
"ALI-SDK" of shared/protocols/dingtalk.md) against the dingbridge DingTalk sandbox.

Covered: the v1.0 app token (`oauth2_1_0.GetAccessToken`, protocol §1.3), a contact call
(`contact_1_0.GetUser`, `GET /v1.0/contact/users/{unionId}`, §6.2), and a 费用报销 approval with
a detail table and Chinese text through `workflow_1_0` (schema, StartProcessInstance,
GetProcessInstance, ExecuteProcessInstance until COMPLETED + agree, §3.2), each result checked
again through the sandbox's admin API. Errors go through the SDK's own gateway parser
(`alibabacloud_gateway_dingtalk.Client.modify_response`: HTTP 4xx/5xx + `{code, message,
requestid}` → `TeaException`).

No monkeypatching is needed here: the SDK takes its host from `Config(endpoint=…)` (it becomes
the `Host` header and the URL is `protocol://endpoint + pathname`), and `protocol='http'`
because the sandbox speaks plain HTTP. Settings: see conftest.py.
"""

import json

import pytest
from alibabacloud_dingtalk.contact_1_0 import models as contact_models
from alibabacloud_dingtalk.contact_1_0.client import Client as ContactClient
from alibabacloud_dingtalk.oauth2_1_0 import models as oauth_models
from alibabacloud_dingtalk.oauth2_1_0.client import Client as OAuthClient
from alibabacloud_dingtalk.workflow_1_0 import models as wf
from alibabacloud_dingtalk.workflow_1_0.client import Client as WorkflowClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models
from Tea.exceptions import TeaException

EXPENSE = "PROC-SBX-FYBX-7C1F3A9E-0001"  # 费用报销 (docs/sandbox.md, approval templates)
RUNTIME = util_models.RuntimeOptions()


@pytest.fixture(scope="module")
def sandbox(fresh_dingtalk):
    return fresh_dingtalk


@pytest.fixture(scope="module")
def config(sandbox):
    # endpoint = "127.0.0.1:<port>" (no scheme): the SDK would default to api.dingtalk.com.
    return open_api_models.Config(endpoint=sandbox.api_host, protocol="http")


@pytest.fixture(scope="module")
def token(config, sandbox):
    resp = OAuthClient(config).get_access_token(
        oauth_models.GetAccessTokenRequest(app_key=sandbox.app_key, app_secret=sandbox.app_secret)
    )
    assert resp.status_code == 200
    return resp.body.access_token


@pytest.fixture(scope="module")
def backend_team(sandbox):
    """The seed's 后端组 (dept 5) members, read with plain requests (set-up, not under test)."""
    token = sandbox.oapi_token()
    users, cursor = [], 0
    while True:
        page = sandbox.oapi(
            "/topapi/v2/user/list", {"dept_id": 5, "cursor": cursor, "size": 100}, token
        )["result"]
        users += page["list"]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert len(users) >= 3, users
    return users


def test_v1_access_token(config, sandbox, token):
    assert token
    again = OAuthClient(config).get_access_token(
        oauth_models.GetAccessTokenRequest(app_key=sandbox.app_key, app_secret=sandbox.app_secret)
    )
    # §1.3: a fetch while the token is valid returns the same token and extends it.
    assert again.body.access_token == token
    assert again.body.expire_in == 7200
    with pytest.raises(TeaException) as err:
        OAuthClient(config).get_access_token(
            oauth_models.GetAccessTokenRequest(app_key=sandbox.app_key, app_secret="wrong-secret")
        )
    assert err.value.code == "invalidClientIdOrSecret"
    assert err.value.data["statusCode"] == 400
    counters = sandbox.admin_get("counters")
    assert counters["calls"]["/v1.0/oauth2/accessToken"] == 3, counters
    assert counters["tokens_issued"] >= 1, counters
    assert counters["errors"].get("invalidClientIdOrSecret") == 1, counters


def test_contact_user_by_union_id(config, token, backend_team):
    person = backend_team[0]
    headers = contact_models.GetUserHeaders(x_acs_dingtalk_access_token=token)
    got = ContactClient(config).get_user_with_options(person["unionid"], headers, RUNTIME).body
    assert got.union_id == person["unionid"]
    assert got.nick == person["name"]  # Chinese name, through the SDK's JSON decoding
    assert any("\u4e00" <= ch <= "\u9fff" for ch in got.nick), got.nick
    assert got.mobile == person["mobile"]
    assert got.state_code == "86"
    with pytest.raises(TeaException) as err:
        ContactClient(config).get_user_with_options("no-such-union-id", headers, RUNTIME)
    assert err.value.code == "invalidParameter.user.notFound"
    assert err.value.data["statusCode"] == 404
    # A wrong token is the observed 400 InvalidAuthentication (§1.5).
    with pytest.raises(TeaException) as err:
        ContactClient(config).get_user_with_options(
            person["unionid"],
            contact_models.GetUserHeaders(x_acs_dingtalk_access_token="not-a-token"),
            RUNTIME,
        )
    assert err.value.code == "InvalidAuthentication"
    assert err.value.data["statusCode"] == 400


def _rows(table_value: str):
    return [{cell["name"]: cell["value"] for cell in row} for row in json.loads(table_value)]


def test_expense_workflow_to_completion(config, sandbox, token, backend_team):
    client = WorkflowClient(config)
    hdr = dict(x_acs_dingtalk_access_token=token)

    schema = client.query_schema_by_process_code_with_options(
        wf.QuerySchemaByProcessCodeRequest(process_code=EXPENSE),
        wf.QuerySchemaByProcessCodeHeaders(**hdr),
        RUNTIME,
    ).body.result
    assert schema.name == "费用报销"
    labels = [item.props.label for item in schema.schema_content.items]
    assert labels[:4] == ["报销事由", "报销类别", "费用明细", "报销总金额（元）"], labels
    table = next(i for i in schema.schema_content.items if i.component_name == "TableField")
    assert [c.props.label for c in table.children][:2] == ["费用类型", "金额（元）"]

    originator, first, second = backend_team[0], backend_team[1], backend_team[2]
    reason = "杭州出差：客户现场部署（含高铁票）"
    details = [
        [
            {"name": "费用类型", "value": "差旅费"},
            {"name": "金额（元）", "value": "1234.50"},
            {"name": "发生日期", "value": "2026-03-02"},
            {"name": "费用说明", "value": "高铁 杭州东→上海虹桥"},
        ],
        [
            {"name": "费用类型", "value": "招待费"},
            {"name": "金额（元）", "value": "680.00"},
            {"name": "费用说明", "value": "客户晚餐（西湖区）"},
        ],
    ]
    V = wf.StartProcessInstanceRequestFormComponentValues
    started = client.start_process_instance_with_options(
        wf.StartProcessInstanceRequest(
            process_code=EXPENSE,
            originator_user_id=originator["userid"],
            dept_id=5,
            approvers=[
                wf.StartProcessInstanceRequestApprovers(action_type="NONE", user_ids=[first["userid"]]),
                wf.StartProcessInstanceRequestApprovers(action_type="NONE", user_ids=[second["userid"]]),
            ],
            form_component_values=[
                V(name="报销事由", value=reason),
                V(name="报销类别", value="差旅报销"),
                # A detail table is a JSON string of rows of {name, value} (§3.1, §3.2).
                V(name="费用明细", value=json.dumps(details, ensure_ascii=False)),
                V(name="报销总金额（元）", value="1914.50"),
            ],
        ),
        wf.StartProcessInstanceHeaders(**hdr),
        RUNTIME,
    )
    instance_id = started.body.instance_id
    assert instance_id

    def get():
        body = client.get_process_instance_with_options(
            wf.GetProcessInstanceRequest(process_instance_id=instance_id),
            wf.GetProcessInstanceHeaders(**hdr),
            RUNTIME,
        ).body
        assert body.success == "true"  # a string, as documented (§3.2)
        return body.result

    inst = get()
    assert inst.status == "RUNNING"
    assert inst.originator_user_id == originator["userid"]
    assert inst.originator_dept_id == "5"
    assert inst.originator_dept_name == "后端组"
    values = {v.name: v for v in inst.form_component_values}
    assert values["报销事由"].value == reason
    assert values["报销类别"].value == "差旅报销"
    assert values["费用明细"].component_type == "TableField"
    assert _rows(values["费用明细"].value) == [
        {"费用类型": "差旅费", "金额（元）": "1234.50", "发生日期": "2026-03-02", "费用说明": "高铁 杭州东→上海虹桥"},
        {"费用类型": "招待费", "金额（元）": "680.00", "费用说明": "客户晚餐（西湖区）"},
    ]
    running = [t for t in inst.tasks if t.status == "RUNNING"]
    assert [t.user_id for t in running] == [first["userid"]], [t.to_map() for t in inst.tasks]

    def execute(task, who, remark):
        return client.execute_process_instance_with_options(
            wf.ExecuteProcessInstanceRequest(
                process_instance_id=instance_id,
                task_id=task.task_id,
                actioner_user_id=who["userid"],
                result="agree",
                remark=remark,
            ),
            wf.ExecuteProcessInstanceHeaders(**hdr),
            RUNTIME,
        ).body

    # Someone who does not hold the task cannot execute it.
    with pytest.raises(TeaException) as err:
        execute(running[0], second, "越权审批")
    assert err.value.code == "invalidParameter", err.value
    assert err.value.data["statusCode"] == 400

    assert execute(running[0], first, "同意，票据齐全").result is True
    inst = get()
    assert inst.status == "RUNNING"
    running = [t for t in inst.tasks if t.status == "RUNNING"]
    assert [t.user_id for t in running] == [second["userid"]]

    assert execute(running[0], second, "财务复核通过").result is True
    inst = get()
    assert inst.status == "COMPLETED"
    assert inst.result == "agree"
    assert inst.finish_time
    assert {t.user_id: (t.status, t.result) for t in inst.tasks} == {
        first["userid"]: ("COMPLETED", "AGREE"),
        second["userid"]: ("COMPLETED", "AGREE"),
    }
    remarks = [r.remark for r in inst.operation_records if r.remark]
    assert "同意，票据齐全" in remarks and "财务复核通过" in remarks, remarks

    # A finished instance accepts no more execution.
    with pytest.raises(TeaException) as err:
        execute(running[0], second, "重复审批")
    assert err.value.data["statusCode"] == 400

    # The sandbox's own record of the instance (admin API) agrees with what the SDK saw.
    mine = [i for i in sandbox.admin_get("instances")["instances"] if i["id"] == instance_id]
    assert len(mine) == 1
    recorded = mine[0]
    assert (recorded["status"], recorded["result"]) == ("COMPLETED", "agree"), recorded
    assert (recorded["process_code"], recorded["originator"]) == (EXPENSE, originator["userid"])
    assert (recorded["dept_id"], recorded["dept_name"]) == (5, "后端组")
    stored_form = json.dumps(recorded["form"], ensure_ascii=False)
    for text in (reason, "高铁 杭州东→上海虹桥", "客户晚餐（西湖区）", "1914.50"):
        assert text in stored_form, (text, stored_form)
    # …and it emitted the approval events (§5.1) for it.
    events = sandbox.admin_get("events")["events"]
    changes = [
        e["payload"]
        for e in events
        if e["event_type"] == "bpms_instance_change" and e["payload"].get("processInstanceId") == instance_id
    ]
    assert [(c["type"], c.get("result")) for c in changes] == [("start", None), ("finish", "agree")], changes
