"""Interoperability: org sync (通讯录同步) checked through both official SDKs.

`dingbridge sync run org_to_kingdee --json` runs the flow of examples/dingbridge.toml (URLs and
credentials pointed at the sandbox started by scripts/interop, a scratch SQLite store) against
the sandbox's DingTalk and Kingdee simulators. Then every DingTalk user is read with the
official DingTalk SDK (PyPI `dingtalk-sdk`, module `dingtalk`: `/topapi/v2/department/listsub`
and `/topapi/v2/user/list` with cursor paging, through the SDK's generic `client.post`, as
test_dingtalk_sdk.py does) and every Kingdee employee and department with the official Kingdee
SDK (PyPI `kingdee-cdp-webapi-sdk`, `K3CloudApiSdk.ExecuteBillQuery`, paged), and they must
match field by field: job number ↔ FStaffNumber, name ↔ FName and mobile ↔ FMobile (Chinese
text compared exactly), main department (the first of `dept_id_list`) ↔ FDeptId.FNumber
`DT<dept_id>`, e-mail ↔ FEmail, active ↔ FForbidStatus A, and every employee audited.

The sandbox's Kingdee starts with the seed company: the same people under the same numbers
(their job numbers), but the departments numbered `BM<id>`, not the flow's `DT<id>`. So the
sync has work to do: create every department `DT<id>` and move every employee to it (and
overwrite what DingTalk masters). The people who have left (in the seed, absent from DingTalk)
stay in Kingdee forbidden. Both simulators are reset to their seed first, and before the run a
few employees are damaged through the Kingdee SDK (renamed, another mobile and e-mail; one
forbidden): the sync must put DingTalk's values back and enable the forbidden one.

Environment: see conftest.py and test_kingdee_sdk.py; `DINGBRIDGE_BIN` is the binary
scripts/interop built (default: target/debug/dingbridge).
"""

import json
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from conftest import dingbridge_bin, require_env
from conftest import toml_set as set_key
from dingtalk.client import AppKeyClient
from k3cloud_webapi_sdk.main import K3CloudApiSdk

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "dingbridge.toml"
FLOW = "org_to_kingdee"
ROOT_DEPT = 1

KINGDEE_URL = os.environ.get("KINGDEE_SANDBOX_URL", "")
ACCT_ID = os.environ.get("KINGDEE_ACCT_ID", "65f0a1b2c3d4e5")
USER_NAME = os.environ.get("KINGDEE_USER_NAME", "webapi")
APP_ID = os.environ.get("KINGDEE_APP_ID", "300001_422C1/iIyuH4R+Ws526A2/yLyrX6RrOs")
APP_SECRET = os.environ.get("KINGDEE_APP_SECRET", "a1b2c3d4e5f60718293a4b5c6d7e8f90")

EMP_KEYS = [
    "FStaffNumber",
    "FName",
    "FMobile",
    "FDeptId.FNumber",
    "FDeptId.FName",
    "FEmail",
    "FForbidStatus",
    "FDocumentStatus",
]
DEPT_KEYS = ["FNumber", "FName", "FParentID.FNumber", "FForbidStatus", "FDocumentStatus"]


def quoted(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def kingdee_admin(path: str) -> str:
    parts = urlsplit(KINGDEE_URL)
    return f"{parts.scheme}://{parts.netloc}/_sandbox/kingdee/{path}"


@pytest.fixture(scope="module")
def sandbox(fresh_dingtalk):
    """Both simulators back at their seed for this module."""
    if not KINGDEE_URL:
        require_env("KINGDEE_SANDBOX_URL", "the Kingdee simulator's base URL")
    requests.post(kingdee_admin("reset"), timeout=10).raise_for_status()
    return fresh_dingtalk


@pytest.fixture(scope="module")
def config(sandbox, tmp_path_factory) -> Path:
    """examples/dingbridge.toml pointed at the sandbox, with a scratch SQLite store."""
    work = tmp_path_factory.mktemp("org_sync")
    text = EXAMPLE.read_text(encoding="utf-8")
    text = set_key(text, "store", "url", quoted(f"sqlite://{work / 'dingbridge.sqlite'}"))
    dt = "connections.dingtalk"
    for key, value in [
        ("corp_id", quoted(sandbox.corp_id)),
        ("agent_id", str(sandbox.agent_id)),
        ("app_key", quoted(sandbox.app_key)),
        ("app_secret", quoted(sandbox.app_secret)),
        ("callback_token", quoted(sandbox.callback_token)),
        ("encoding_aes_key", quoted(sandbox.aes_key)),
        ("oapi_base_url", quoted(sandbox.url)),
        ("api_base_url", quoted(sandbox.api_url)),
    ]:
        text = set_key(text, dt, key, value)
    kd = "connections.kingdee"
    for key, value in [
        ("base_url", quoted(KINGDEE_URL)),
        ("acct_id", quoted(ACCT_ID)),
        ("user_name", quoted(USER_NAME)),
        ("app_id", quoted(APP_ID)),
        ("app_secret", quoted(APP_SECRET)),
    ]:
        text = set_key(text, kd, key, value)
    path = work / "dingbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def kingdee_api(sandbox):
    api = K3CloudApiSdk(KINGDEE_URL)
    api.InitConfig(ACCT_ID, USER_NAME, APP_ID, APP_SECRET, KINGDEE_URL, lcid=2052, org_num=0)
    return api


def ok(raw: str) -> dict:
    body = json.loads(raw)
    status = body["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is True, raw
    return body


@pytest.fixture(scope="module")
def tampered(kingdee_api) -> dict:
    """Seed employees changed in Kingdee before the run: number → what was done."""
    raw = kingdee_api.ExecuteBillQuery(
        {
            "FormId": "BD_Empinfo",
            "FieldKeys": "FStaffNumber,FID,FName,FEmail",
            "FilterString": "FForbidStatus = 'A'",
            "OrderString": "FStaffNumber ASC",
            "Limit": 50,
        }
    )
    assert ',"IsSuccess":false,' not in raw, raw
    # People with an e-mail (the seed's Kingdee holds DingTalk's); clearing one DingTalk does
    # not have is the test at the end.
    rows = [r[:3] for r in json.loads(raw) if r[3]]
    assert len(rows) >= 3, rows
    done = {}
    for number, fid, name in rows[:2]:
        ok(kingdee_api.UnAudit("BD_Empinfo", {"Numbers": [number]}))
        ok(
            kingdee_api.Save(
                "BD_Empinfo",
                {
                    "Model": {
                        "FID": fid,
                        "FName": f"{name}（已离职？）",
                        "FMobile": "13800000000",
                        "FEmail": "stale@example.com",
                    }
                },
            )
        )
        ok(kingdee_api.Submit("BD_Empinfo", {"Numbers": [number]}))
        ok(kingdee_api.Audit("BD_Empinfo", {"Numbers": [number]}))
        done[number] = "renamed"
    number = rows[2][0]
    ok(kingdee_api.ExcuteOperation("BD_Empinfo", "Forbid", {"Numbers": [number]}))
    done[number] = "forbidden"
    return done


def sync_run(config: Path, mode: str) -> dict:
    """`dingbridge sync run org_to_kingdee --mode <mode> --json` with the real binary."""
    started = time.monotonic()
    proc = subprocess.run(
        [dingbridge_bin(), "--lang", "en", "sync", "run", FLOW, "-c", str(config), "--mode", mode, "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in os.environ.items() if k != "DINGBRIDGE_CONFIG"},
    )
    output = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, output
    summary = json.loads(proc.stdout)
    summary["wall_seconds"] = time.monotonic() - started
    return summary


@pytest.fixture(scope="module")
def run(config, tampered) -> dict:
    """One full sync; its `--json` summary."""
    return sync_run(config, "full")


@pytest.fixture(scope="module")
def dingtalk(sandbox, run):
    """(departments by id, users by userid) read with the official DingTalk SDK after the run."""

    class SandboxClient(AppKeyClient):
        API_BASE_URL = sandbox.url + "/"

    client = SandboxClient(sandbox.corp_id, sandbox.app_key, sandbox.app_secret)

    # The standard edition answers 20 calls/s per API (§7) and the SDK does not retry 90018.
    def paced(uri, data):
        time.sleep(0.06)
        return client.post(uri, data)["result"]

    depts, queue = {}, [ROOT_DEPT]
    while queue:
        parent = queue.pop(0)
        for d in paced("/topapi/v2/department/listsub", {"dept_id": parent}):
            depts[d["dept_id"]] = {**d, "parent_id": d.get("parent_id", parent)}
            queue.append(d["dept_id"])
    users = {}
    for dept_id in [ROOT_DEPT, *depts]:
        cursor = 0
        while True:
            page = paced("/topapi/v2/user/list", {"dept_id": dept_id, "cursor": cursor, "size": 100})
            for u in page["list"]:
                users.setdefault(u["userid"], u)
            if not page["has_more"]:
                break
            cursor = page["next_cursor"]
    state = sandbox.admin_get("state")
    assert len(depts) + 1 == state["departments"], (len(depts), state)
    return depts, users


@pytest.fixture(scope="module")
def kingdee(run, kingdee_api):
    """(employees, departments) by number, read with the official Kingdee SDK after the run."""
    api = kingdee_api

    def query_all(form_id, keys):
        rows, start, limit = [], 0, 500
        while True:
            raw = api.ExecuteBillQuery(
                {
                    "FormId": form_id,
                    "FieldKeys": ",".join(keys),
                    "OrderString": f"{keys[0]} ASC",
                    "StartRow": start,
                    "Limit": limit,
                }
            )
            assert ',"IsSuccess":false,' not in raw, raw
            page = json.loads(raw)
            rows += page
            if len(page) < limit:
                return rows
            start += limit

    def by_number(form_id, keys):
        out = {}
        for row in query_all(form_id, keys):
            record = dict(zip(keys, row))
            number = record[keys[0]]
            assert number not in out, f"{form_id}: number {number} appears twice: {out[number]} and {record}"
            out[number] = record
        return out

    return by_number("BD_Empinfo", EMP_KEYS), by_number("BD_Department", DEPT_KEYS)


def dept_number(dept_id) -> str:
    return "" if dept_id in (None, ROOT_DEPT) else f"DT{dept_id}"


def text(v) -> str:
    return "" if v is None else str(v)


def test_the_sync_run_succeeded_and_had_work_to_do(run, dingtalk):
    depts, users = dingtalk
    counts = run["counts"]
    assert run["status"] == "success", run
    assert run["report"]["complete"] is True, run["report"]
    assert run["report"]["rejected"] == [], run["report"]["rejected"]
    assert counts["failed"] == 0 and counts["conflicts"] == 0, counts
    assert counts["departments"] == len(depts) and counts["users"] == len(users), counts
    # A fresh store: every record is written, the DT departments created, the seeded
    # employees (same numbers) updated.
    assert counts["created"] + counts["updated"] == len(depts) + len(users), counts
    assert counts["created"] >= len(depts), counts
    print(f"org sync: {counts} in {run['seconds']:.1f} s (process {run['wall_seconds']:.1f} s)")


def test_every_dingtalk_user_is_a_kingdee_employee_field_by_field(dingtalk, kingdee):
    depts, users = dingtalk
    employees, _ = kingdee
    assert users, "DingTalk lists no users"
    mismatches = []
    for userid, u in sorted(users.items()):
        number = u.get("job_number") or ""
        assert number, f"{userid} ({u['name']}) has no job number: the flow's key"
        e = employees.get(number)
        if e is None:
            mismatches.append(f"{number} {u['name']} ({userid}): not in Kingdee")
            continue
        main = (u.get("dept_id_list") or [None])[0]
        want = {
            "FStaffNumber": number,
            "FName": u["name"],
            "FMobile": u.get("mobile") or "",
            "FDeptId.FNumber": dept_number(main),
            "FDeptId.FName": depts[main]["name"] if main in depts else "",
            "FEmail": u.get("email") or "",
            "FForbidStatus": "A" if u.get("active", True) else "B",
            "FDocumentStatus": "C",
        }
        got = {k: text(e[k]) for k in want}
        if got != want:
            diff = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
            mismatches.append(f"{number} {u['name']}: (Kingdee, DingTalk) {diff}")
    assert not mismatches, f"{len(mismatches)} of {len(users)} differ:\n" + "\n".join(mismatches[:20])
    # Chinese text survived both SDKs and the hub byte for byte.
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in e["FName"]) for e in employees.values())


def test_employees_changed_in_kingdee_were_put_back(tampered, dingtalk, kingdee):
    _, users = dingtalk
    employees, _ = kingdee
    by_number = {u.get("job_number"): u for u in users.values()}
    for number, what in tampered.items():
        u, e = by_number[number], employees[number]
        assert (e["FName"], e["FMobile"], text(e["FEmail"]), e["FForbidStatus"]) == (
            u["name"],
            u["mobile"],
            u.get("email") or "",
            "A",
        ), f"{number} ({what}): {e}"


def test_kingdee_employees_not_in_dingtalk_are_forbidden(dingtalk, kingdee):
    _, users = dingtalk
    employees, _ = kingdee
    numbers = {u.get("job_number") for u in users.values()}
    others = {n: e for n, e in employees.items() if n not in numbers}
    enabled = {n: e["FName"] for n, e in others.items() if e["FForbidStatus"] != "B"}
    assert not enabled, f"Kingdee employees absent from DingTalk but enabled: {enabled}"


def test_every_dingtalk_department_is_a_kingdee_department(dingtalk, kingdee):
    depts, _ = dingtalk
    _, departments = kingdee
    mismatches = []
    for dept_id, d in sorted(depts.items()):
        number = dept_number(dept_id)
        k = departments.get(number)
        if k is None:
            mismatches.append(f"{number} {d['name']}: not in Kingdee")
            continue
        want = {
            "FNumber": number,
            "FName": d["name"],
            "FParentID.FNumber": dept_number(d["parent_id"]),
            "FForbidStatus": "A",
            "FDocumentStatus": "C",
        }
        got = {key: text(k[key]) for key in want}
        if got != want:
            diff = {key: (got[key], want[key]) for key in want if got[key] != want[key]}
            mismatches.append(f"{number} {d['name']}: (Kingdee, DingTalk) {diff}")
    assert not mismatches, f"{len(mismatches)} of {len(depts)} differ:\n" + "\n".join(mismatches[:20])


def test_an_email_dingtalk_does_not_have_is_cleared_by_reconcile(config, dingtalk, kingdee, kingdee_api):
    """Runs last: it changes Kingdee after the checks above."""
    _, users = dingtalk
    without = sorted(u["job_number"] for u in users.values() if not u.get("email"))
    assert without, "every DingTalk user has an e-mail; pick another field"
    number = without[0]
    fid = json.loads(
        kingdee_api.ExecuteBillQuery(
            {"FormId": "BD_Empinfo", "FieldKeys": "FID", "FilterString": f"FStaffNumber = '{number}'"}
        )
    )[0][0]
    ok(kingdee_api.UnAudit("BD_Empinfo", {"Numbers": [number]}))
    ok(kingdee_api.Save("BD_Empinfo", {"Model": {"FID": fid, "FEmail": "stale@example.com"}}))
    ok(kingdee_api.Submit("BD_Empinfo", {"Numbers": [number]}))
    ok(kingdee_api.Audit("BD_Empinfo", {"Numbers": [number]}))
    for _ in range(2):
        summary = sync_run(config, "reconcile")
        assert summary["status"] == "success", summary
    email = json.loads(
        kingdee_api.ExecuteBillQuery(
            {"FormId": "BD_Empinfo", "FieldKeys": "FEmail", "FilterString": f"FStaffNumber = '{number}'"}
        )
    )[0][0]
    # The second reconcile found nothing to do, and DingTalk's (empty) e-mail is in Kingdee.
    assert (summary["counts"]["updated"], text(email)) == (0, ""), summary["counts"]
