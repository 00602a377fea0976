"""Interoperability for the approval integration: the official SDKs against both sandboxes.

DingTalk (PyPI `alibabacloud-dingtalk` 2.2.65, `workflow_1_0`): an expense claim started with
`start_process_instance` gets a comment through `add_process_instance_comment` (ALI-SDK action
`AddProcessInstanceComment`, `POST /v1.0/workflow/processInstances/comments`), and
`get_process_instance` shows it as an `ADD_REMARK` operation record; the SDK's error parser
sees the sandbox's refusals. The instance is then finished and revoked with the sandbox's admin
API (`/_sandbox/dingtalk/approvals/{id}/approve|revoke`) and read back through the SDK.

Kingdee (PyPI `kingdee-cdp-webapi-sdk` 8.2.0, `k3cloud_webapi_sdk`): an ER_ExpReimbursement that
carries the DingTalk instance id in the extension field `F_DDInstanceId` is saved, submitted and
audited, then found back by ExecuteBillQuery filtered on that field, and View shows it.

Settings: see conftest.py (DingTalk) and test_kingdee_sdk.py (KINGDEE_*).
"""

import json
import os

import pytest
from alibabacloud_dingtalk.oauth2_1_0 import models as oauth_models
from alibabacloud_dingtalk.oauth2_1_0.client import Client as OAuthClient
from alibabacloud_dingtalk.workflow_1_0 import models as wf
from alibabacloud_dingtalk.workflow_1_0.client import Client as WorkflowClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models
from conftest import require_env
from k3cloud_webapi_sdk.main import K3CloudApiSdk
from Tea.exceptions import TeaException

EXPENSE = "PROC-SBX-FYBX-7C1F3A9E-0001"  # 费用报销 (docs/sandbox.md, approval templates)
RUNTIME = util_models.RuntimeOptions()

ACCT_ID = os.environ.get("KINGDEE_ACCT_ID", "65f0a1b2c3d4e5")
USER_NAME = os.environ.get("KINGDEE_USER_NAME", "webapi")
APP_ID = os.environ.get("KINGDEE_APP_ID", "300001_422C1/iIyuH4R+Ws526A2/yLyrX6RrOs")
APP_SECRET = os.environ.get("KINGDEE_APP_SECRET", "a1b2c3d4e5f60718293a4b5c6d7e8f90")


@pytest.fixture(scope="module")
def sandbox(fresh_dingtalk):
    return fresh_dingtalk


@pytest.fixture(scope="module")
def config(sandbox):
    return open_api_models.Config(endpoint=sandbox.api_host, protocol="http")


@pytest.fixture(scope="module")
def hdr(config, sandbox):
    token = (
        OAuthClient(config)
        .get_access_token(
            oauth_models.GetAccessTokenRequest(app_key=sandbox.app_key, app_secret=sandbox.app_secret)
        )
        .body.access_token
    )
    return dict(x_acs_dingtalk_access_token=token)


@pytest.fixture(scope="module")
def people(sandbox):
    """Members of the seed's 后端组 (dept 5), read with plain requests (set-up only)."""
    page = sandbox.oapi("/topapi/v2/user/list", {"dept_id": 5, "cursor": 0, "size": 100})["result"]
    users = [u["userid"] for u in page["list"]]
    assert len(users) >= 3, users
    return users


@pytest.fixture(scope="module")
def instance(config, hdr, people):
    """A running 费用报销 started through the SDK: (instance id, originator, approver)."""
    originator, approver = people[0], people[1]
    details = [
        [{"name": "费用类型", "value": "差旅费"}, {"name": "金额（元）", "value": "860.00"}],
        [{"name": "费用类型", "value": "交通费"}, {"name": "金额（元）", "value": "140.00"}],
    ]
    V = wf.StartProcessInstanceRequestFormComponentValues
    started = WorkflowClient(config).start_process_instance_with_options(
        wf.StartProcessInstanceRequest(
            process_code=EXPENSE,
            originator_user_id=originator,
            dept_id=5,
            approvers=[wf.StartProcessInstanceRequestApprovers(action_type="NONE", user_ids=[approver])],
            form_component_values=[
                V(name="报销事由", value="成都客户培训（含往返机票）"),
                V(name="报销类别", value="差旅报销"),
                V(name="费用明细", value=json.dumps(details, ensure_ascii=False)),
                V(name="报销总金额（元）", value="1000.00"),
            ],
        ),
        wf.StartProcessInstanceHeaders(**hdr),
        RUNTIME,
    )
    assert started.body.instance_id
    return started.body.instance_id, originator, approver


def get(config, hdr, instance_id):
    body = (
        WorkflowClient(config)
        .get_process_instance_with_options(
            wf.GetProcessInstanceRequest(process_instance_id=instance_id),
            wf.GetProcessInstanceHeaders(**hdr),
            RUNTIME,
        )
        .body
    )
    assert body.success == "true"
    return body.result


def comment(config, hdr, instance_id, text, user):
    return (
        WorkflowClient(config)
        .add_process_instance_comment_with_options(
            wf.AddProcessInstanceCommentRequest(
                process_instance_id=instance_id, text=text, comment_user_id=user
            ),
            wf.AddProcessInstanceCommentHeaders(**hdr),
            RUNTIME,
        )
        .body
    )


def test_comment_shows_as_add_remark(config, hdr, sandbox, instance, people):
    instance_id, _, _ = instance
    commenter = people[2]
    events_before = len(sandbox.admin_get("events")["events"])
    text = "钉桥：已生成金蝶费用报销单，待财务审核（含“引号”）"
    body = comment(config, hdr, instance_id, text, commenter)
    assert (body.result, body.success) == (True, True)

    inst = get(config, hdr, instance_id)
    assert inst.status == "RUNNING"
    last = inst.operation_records[-1]
    assert (last.type, last.result, last.remark, last.user_id) == ("ADD_REMARK", "NONE", text, commenter)
    assert last.date and last.date.endswith("Z")
    # The old oapi view of the same instance (plain requests) shows it too.
    oapi = sandbox.oapi("/topapi/processinstance/get", {"process_instance_id": instance_id})
    rec = oapi["process_instance"]["operation_records"][-1]
    assert (rec["operation_type"], rec["remark"], rec["userid"]) == ("ADD_REMARK", text, commenter)
    # A comment is not an approval event.
    assert len(sandbox.admin_get("events")["events"]) == events_before


def test_comment_refusals_through_the_sdk_parser(config, hdr, instance, people):
    instance_id, _, _ = instance
    with pytest.raises(TeaException) as err:
        comment(config, hdr, "no-such-instance", "评论", people[2])
    assert err.value.code == "processInstanceNotExist"
    assert err.value.data["statusCode"] == 400
    for text, user in [("", people[2]), ("评论", "no-such-user")]:
        with pytest.raises(TeaException) as err:
            comment(config, hdr, instance_id, text, user)
        assert err.value.code == "invalidParameter", (text, user)
        assert err.value.data["statusCode"] == 400


def test_admin_approve_then_revoke(config, hdr, sandbox, instance):
    instance_id, originator, approver = instance
    done = sandbox.admin_post(f"approvals/{instance_id}/approve", {"remark": "同意"})
    assert (done["status"], done["result"]) == ("COMPLETED", "agree"), done
    assert [t["userid"] for t in done["executed"]] == [approver]
    inst = get(config, hdr, instance_id)
    assert (inst.status, inst.result) == ("COMPLETED", "agree")

    revoked = sandbox.admin_post(f"approvals/{instance_id}/revoke", {"remark": "发票作废"})
    assert revoked["operator"] == originator
    inst = get(config, hdr, instance_id)
    assert (inst.status, inst.result) == ("TERMINATED", "agree")
    types = [r.type for r in inst.operation_records]
    assert types == [
        "START_PROCESS_INSTANCE",
        "ADD_REMARK",
        "EXECUTE_TASK_NORMAL",
        "TERMINATE_PROCESS_INSTANCE",
    ], types
    changes = [
        e["payload"]["type"]
        for e in sandbox.admin_get("events")["events"]
        if e["event_type"] == "bpms_instance_change" and e["payload"].get("processInstanceId") == instance_id
    ]
    assert changes == ["start", "finish", "terminate"], changes


@pytest.fixture(scope="module")
def kingdee():
    url = require_env("KINGDEE_SANDBOX_URL", "the Kingdee simulator's base URL")
    api = K3CloudApiSdk(url)
    api.InitConfig(ACCT_ID, USER_NAME, APP_ID, APP_SECRET, url, lcid=2052, org_num=0)
    return api


def ok(raw: str) -> dict:
    body = json.loads(raw)
    status = body["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is True, raw
    return body


def test_kingdee_extension_field_carries_the_instance(kingdee, instance):
    instance_id, _, _ = instance
    saved = ok(
        kingdee.Save(
            "ER_ExpReimbursement",
            {
                "Model": {
                    "FBillTypeID": {"FNumber": "FYBXD001_SYS"},
                    "FDate": "2026-03-10",
                    "FOrgID": {"FNumber": "100"},
                    "FProposerID": {"FSTAFFNUMBER": "E0005"},
                    "FRequestDeptID": {"FNumber": "BM00005"},
                    "FCurrencyID": {"FNumber": "PRE001"},
                    "FCausa": "成都客户培训（钉钉审批同步）",
                    "F_DDInstanceId": instance_id,
                    "FEntity": [
                        {"FExpID": {"FNumber": "FYXM01"}, "FExpenseAmount": 860},
                        {"FExpID": {"FNumber": "FYXM02"}, "FExpenseAmount": 140},
                    ],
                }
            },
        )
    )
    number = saved["Result"]["Number"]
    for op in (kingdee.Submit, kingdee.Audit):
        ok(op("ER_ExpReimbursement", {"Numbers": [number]}))

    raw = kingdee.ExecuteBillQuery(
        {
            "FormId": "ER_ExpReimbursement",
            "FieldKeys": "FBillNo,F_DDInstanceId,FDocumentStatus,FExpAmountSum",
            "FilterString": f"F_DDInstanceId = '{instance_id}'",
        }
    )
    assert ',"IsSuccess":false,' not in raw, raw
    assert json.loads(raw) == [[number, instance_id, "C", 1000]]
    raw = kingdee.ExecuteBillQuery(
        {
            "FormId": "ER_ExpReimbursement",
            "FieldKeys": "FBillNo",
            "FilterString": "F_DDInstanceId = 'no-such-instance'",
        }
    )
    assert json.loads(raw) == [], raw

    view = json.loads(kingdee.View("ER_ExpReimbursement", {"Number": number}))
    assert view["Result"]["ResponseStatus"]["IsSuccess"] is True, view
    assert view["Result"]["Result"]["F_DDInstanceId"] == instance_id
    assert view["Result"]["Result"]["DocumentStatus"] == "C"
