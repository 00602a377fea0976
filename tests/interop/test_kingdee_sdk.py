"""Interoperability: the official Kingdee K3Cloud Python SDK (PyPI `kingdee-cdp-webapi-sdk`
8.2.0, module `k3cloud_webapi_sdk`) against the dingbridge Kingdee sandbox.

The SDK authenticates every call with the v8 signature headers (protocol notes §1.7) and keeps
the `kdservice-sessionid` cookie it gets back; the sandbox counters must show one login for the
whole run (the session is re-used, never a login per call).

Environment:
  KINGDEE_SANDBOX_URL   base URL, e.g. http://127.0.0.1:8765/k3cloud/   (required)
  KINGDEE_ACCT_ID       default 65f0a1b2c3d4e5
  KINGDEE_USER_NAME     default webapi
  KINGDEE_APP_ID        default 300001_422C1/iIyuH4R+Ws526A2/yLyrX6RrOs
  KINGDEE_APP_SECRET    default a1b2c3d4e5f60718293a4b5c6d7e8f90
  KINGDEE_SANDBOX_ADMIN_URL  default <scheme://host:port>/_sandbox/kingdee/
"""

import json
import os
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from k3cloud_webapi_sdk.main import K3CloudApiSdk

SERVER_URL = os.environ.get("KINGDEE_SANDBOX_URL", "")
ACCT_ID = os.environ.get("KINGDEE_ACCT_ID", "65f0a1b2c3d4e5")
USER_NAME = os.environ.get("KINGDEE_USER_NAME", "webapi")
APP_ID = os.environ.get("KINGDEE_APP_ID", "300001_422C1/iIyuH4R+Ws526A2/yLyrX6RrOs")
APP_SECRET = os.environ.get("KINGDEE_APP_SECRET", "a1b2c3d4e5f60718293a4b5c6d7e8f90")

pytestmark = pytest.mark.skipif(not SERVER_URL, reason="KINGDEE_SANDBOX_URL is not set")


def admin_url(path: str) -> str:
    explicit = os.environ.get("KINGDEE_SANDBOX_ADMIN_URL")
    if explicit:
        return explicit.rstrip("/") + "/" + path
    parts = urlsplit(SERVER_URL)
    return f"{parts.scheme}://{parts.netloc}/_sandbox/kingdee/{path}"


@pytest.fixture(scope="module")
def sdk():
    # A clean data centre and fresh counters for this module.
    requests.post(admin_url("reset"), timeout=10).raise_for_status()
    api = K3CloudApiSdk(SERVER_URL)
    api.InitConfig(ACCT_ID, USER_NAME, APP_ID, APP_SECRET, SERVER_URL, lcid=2052, org_num=0)
    return api


def ok(raw: str) -> dict:
    """Parses a Save/Submit/Audit answer and asserts IsSuccess."""
    body = json.loads(raw)
    status = body["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is True, raw
    assert status["MsgCode"] == 0, raw
    return body


def lifecycle(sdk, form_id: str, model: dict) -> tuple:
    """Save → Submit → Audit; returns (id, number, Save body)."""
    saved = ok(sdk.Save(form_id, {"Model": model}))
    number = saved["Result"]["Number"]
    ident = saved["Result"]["Id"]
    entity = saved["Result"]["ResponseStatus"]["SuccessEntitys"][0]
    assert (entity["Id"], entity["Number"], entity["DIndex"]) == (ident, number, 0)
    for op in (sdk.Submit, sdk.Audit):
        body = ok(op(form_id, {"Numbers": [number]}))
        assert body["Result"]["ResponseStatus"]["SuccessEntitys"][0]["Number"] == number
    return ident, number, saved


def view(sdk, form_id: str, number: str) -> dict:
    body = json.loads(sdk.View(form_id, {"Number": number}))
    assert body["Result"]["ResponseStatus"]["IsSuccess"] is True, body
    return body["Result"]["Result"]


def query(sdk, data: dict) -> list:
    raw = sdk.ExecuteBillQuery(data)
    rows = json.loads(raw)
    assert ',"IsSuccess":false,' not in raw, raw
    return rows


SUFFIX = uuid.uuid4().hex[:6].upper()
DEPT = f"PYD{SUFFIX}"
STAFF = f"PYE{SUFFIX}"


def test_department(sdk):
    name = "互操作测试部（研发·杭州）"
    ident, number, _ = lifecycle(
        sdk,
        "BD_Department",
        {
            "FCreateOrgId": {"FNumber": "100"},
            "FUseOrgId": {"FNumber": "100"},
            "FNumber": DEPT,
            "FName": name,
            "FParentID": {"FNumber": "BM00003"},
            "FDescription": "由官方Python SDK创建",
        },
    )
    assert number == DEPT
    v = view(sdk, "BD_Department", DEPT)
    assert v["Id"] == ident
    assert v["Name"] == name
    assert v["DocumentStatus"] == "C"
    assert v["ParentID"]["Number"] == "BM00003"
    assert v["ParentID"]["Name"][0]["Value"] == "研发中心"
    # View keeps the order the fields were saved in.
    keys = [k for k in v if k not in ("Id", "DocumentStatus", "ForbidStatus", "CreateDate", "ModifyDate")]
    assert keys == ["CreateOrgId", "UseOrgId", "Number", "Name", "ParentID", "Description"]
    rows = query(
        sdk,
        {
            "FormId": "BD_Department",
            "FieldKeys": "FNumber,FName,FDocumentStatus,FParentID.FNumber",
            "FilterString": f"FNumber = '{DEPT}'",
        },
    )
    assert rows == [[DEPT, name, "C", "BM00003"]]


def test_employee(sdk):
    name = "欧阳晓雯"
    _, number, _ = lifecycle(
        sdk,
        "BD_Empinfo",
        {
            "FCreateOrgId": {"FNumber": "100"},
            "FUseOrgId": {"FNumber": "100"},
            "FName": name,
            "FStaffNumber": STAFF,
            "FMobile": "13900001111",
            "FDeptId": {"FNumber": DEPT},
            "FPostName": "高级工程师（后端）",
        },
    )
    assert number == STAFF
    v = view(sdk, "BD_Empinfo", STAFF)
    assert v["Name"] == name
    assert v["DeptId"]["Number"] == DEPT
    assert v["PostName"] == "高级工程师（后端）"
    assert v["DocumentStatus"] == "C"
    rows = query(
        sdk,
        {
            "FormId": "BD_Empinfo",
            "FieldKeys": "FStaffNumber,FName,FDeptId.FName,FDocumentStatus",
            "FilterString": f"FStaffNumber = '{STAFF}' and FName like '欧阳%'",
        },
    )
    assert rows == [[STAFF, name, "互操作测试部（研发·杭州）", "C"]]


def test_expense_reimbursement(sdk):
    causa = "杭州出差：客户现场部署（含高铁票）"
    _, number, saved = lifecycle(
        sdk,
        "ER_ExpReimbursement",
        {
            "FBillTypeID": {"FNumber": "FYBXD001_SYS"},
            "FDate": "2026-03-02",
            "FOrgID": {"FNumber": "100"},
            "FProposerID": {"FSTAFFNUMBER": STAFF},
            "FRequestDeptID": {"FNumber": DEPT},
            "FExpenseDeptID": {"FNumber": DEPT},
            "FCurrencyID": {"FNumber": "PRE001"},
            "FCausa": causa,
            "FEntity": [
                {"FExpID": {"FNumber": "FYXM01"}, "FExpenseAmount": 1234.5, "FRemark": "高铁 杭州东→上海虹桥"},
                {"FExpID": {"FNumber": "FYXM06"}, "FExpenseAmount": 680, "FRemark": "住宿两晚"},
            ],
        },
    )
    assert number.startswith("FYBX")
    v = view(sdk, "ER_ExpReimbursement", number)
    assert v["BillNo"] == number
    assert v["Causa"] == causa
    assert v["DocumentStatus"] == "C"
    assert v["ExpAmountSum"] == 1914.5
    entries = v["ER_ExpenseReimbEntry"]
    assert [e["ExpID"]["Name"][0]["Value"] for e in entries] == ["差旅费", "住宿费"]
    assert entries[0]["Remark"] == "高铁 杭州东→上海虹桥"
    rows = query(
        sdk,
        {
            "FormId": "ER_ExpReimbursement",
            "FieldKeys": "FBillNo,FCausa,FProposerID.FName,FExpID.FName,FExpenseAmount",
            "FilterString": f"FBillNo = '{number}'",
            "OrderString": "FExpenseAmount DESC",
        },
    )
    assert rows == [
        [number, causa, "欧阳晓雯", "差旅费", 1234.5],
        [number, causa, "欧阳晓雯", "住宿费", 680],
    ]


def test_errors_are_kingdee_shaped(sdk):
    body = json.loads(
        sdk.Save(
            "BD_Empinfo",
            {"Model": {"FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"},
                       "FName": "无部门", "FStaffNumber": f"X{SUFFIX}", "FDeptId": {"FNumber": "NOPE"}}},
        )
    )
    status = body["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False
    assert status["ErrorCode"] == 500
    assert status["MsgCode"] == 11
    assert status["Errors"][0]["FieldName"] == "FDeptId"
    assert "NOPE" in status["Errors"][0]["Message"]
    raw = sdk.ExecuteBillQuery({"FormId": "BD_Department", "FieldKeys": "FNumber,FNoSuchField"})
    assert ',"IsSuccess":false,' in raw
    err = json.loads(raw)[0][0]["Result"]["ResponseStatus"]
    assert err["Errors"][0]["Message"] == "元数据中标识为FNoSuchField的字段不存在"


def test_session_was_reused(sdk):
    counters = requests.get(admin_url("counters"), timeout=10).json()
    # One session for the whole run: the SDK signs every call and sends back the cookie.
    assert counters["logins"] == 1, counters
    assert counters["logins_by_mode"] == {"SignatureHeaders": 1}, counters
    assert counters["failed_logins"] == 0, counters
    assert counters["sessions_active"] == 1, counters
    calls = counters["calls"]
    assert calls["Save"] == 4 and calls["Submit"] == 3 and calls["Audit"] == 3, calls
    assert calls["View"] == 3 and calls["ExecuteBillQuery"] == 4, calls
