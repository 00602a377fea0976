"""Shared settings for the interoperability tests (tests/interop/).

`scripts/interop` starts `dingbridge sandbox` (and, for the callback test, `dingbridge serve`)
and exports the addresses and credentials below before it runs pytest. The Kingdee test keeps
its own module-level settings (`KINGDEE_*`); this file only adds the DingTalk side.

A DingTalk test whose address is missing FAILS with a message naming the variable: in CI a
missing variable is a broken script, not a reason to skip. Run by hand with
`DINGBRIDGE_INTEROP_OPTIONAL=1` to turn those failures into skips.

Environment (scripts/interop reads them from the sandbox's `--config-out` file):
  DINGTALK_SANDBOX_URL      `[connections.dingtalk] oapi_base_url`, e.g. http://127.0.0.1:8766 (required)
  DINGTALK_API_BASE_URL     `api_base_url` (default: DINGTALK_SANDBOX_URL; the sandbox serves both families)
  DINGTALK_APP_KEY          default dingsimappkey0000001 (the seeded app, docs/sandbox.md)
  DINGTALK_APP_SECRET       default sandboxSecret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL
  DINGTALK_CORP_ID          default ding5f2c8a0e1b3d4c6a
  DINGTALK_AGENT_ID         default 3000000001
  DINGTALK_CALLBACK_TOKEN   default dtsimtoken01
  DINGTALK_AES_KEY          default abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG (EncodingAESKey)
  DINGBRIDGE_URL            the hub started by scripts/interop, e.g. http://127.0.0.1:8080 (callback test only)
  DINGBRIDGE_BIN            the binary scripts/interop built (default: target/debug/dingbridge)
  KINGDEE_SANDBOX_URL       `[connections.kingdee] base_url` (the `kingdee_sandbox` fixture; KINGDEE_ACCT_ID,
                            KINGDEE_USER_NAME, KINGDEE_APP_ID, KINGDEE_APP_SECRET default to the seeded app)
  DINGBRIDGE_INTEROP_OPTIONAL=1   skip instead of failing when a required variable is missing

Helpers for tests that run the real binary on examples/dingbridge.toml pointed at the sandboxes
(test_approvals.py): `dingbridge_bin()`, `example_config()`, `toml_set()`.
"""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

OPTIONAL = os.environ.get("DINGBRIDGE_INTEROP_OPTIONAL", "") == "1"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "dingbridge.toml"


def require_env(name: str, what: str) -> str:
    """The value of `name`, or a clear failure (a skip with DINGBRIDGE_INTEROP_OPTIONAL=1)."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    message = (
        f"{name} is not set: {what}. scripts/interop exports it; "
        f"set DINGBRIDGE_INTEROP_OPTIONAL=1 to skip these tests instead of failing."
    )
    if OPTIONAL:
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


@dataclass(frozen=True)
class DingTalkSandbox:
    """Where the DingTalk simulator listens and the app it was seeded with."""

    url: str  # oapi base, no trailing slash
    api_url: str  # v1.0 base, no trailing slash
    app_key: str
    app_secret: str
    corp_id: str
    agent_id: int
    callback_token: str
    aes_key: str

    @property
    def api_host(self) -> str:
        """`host:port` of the v1.0 base (what the alibabacloud SDK calls its endpoint)."""
        return urlsplit(self.api_url).netloc

    def admin_url(self, path: str) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/_sandbox/dingtalk/{path.lstrip('/')}"

    def admin_get(self, path: str):
        r = requests.get(self.admin_url(path), timeout=10)
        assert r.status_code == 200, f"GET {path}: HTTP {r.status_code} {r.text[:500]}"
        return r.json()

    def admin_post(self, path: str, body=None):
        r = requests.post(self.admin_url(path), json=body if body is not None else {}, timeout=10)
        assert r.status_code == 200, f"POST {path}: HTTP {r.status_code} {r.text[:500]}"
        return r.json()

    def oapi_token(self) -> str:
        """An app token fetched with plain requests (test set-up, not the SDK under test)."""
        r = requests.get(
            f"{self.url}/gettoken",
            params={"appkey": self.app_key, "appsecret": self.app_secret},
            timeout=10,
        )
        body = r.json()
        assert body.get("errcode") == 0, body
        return body["access_token"]

    def oapi(self, path: str, body: dict, token: str = None) -> dict:
        """One oapi POST with plain requests (test set-up and cross-checks)."""
        r = requests.post(
            f"{self.url}{path}",
            params={"access_token": token or self.oapi_token()},
            json=body,
            timeout=10,
        )
        data = r.json()
        assert data.get("errcode") == 0, f"{path}: {data}"
        return data


@pytest.fixture(scope="session")
def dingtalk_sandbox() -> DingTalkSandbox:
    url = require_env(
        "DINGTALK_SANDBOX_URL",
        "the DingTalk simulator's base URL ([connections.dingtalk] oapi_base_url of `dingbridge sandbox --config-out`)",
    ).rstrip("/")
    env = os.environ.get
    sandbox = DingTalkSandbox(
        url=url,
        api_url=(env("DINGTALK_API_BASE_URL") or url).rstrip("/"),
        app_key=env("DINGTALK_APP_KEY") or "dingsimappkey0000001",
        app_secret=env("DINGTALK_APP_SECRET")
        or "sandboxSecret-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL",
        corp_id=env("DINGTALK_CORP_ID") or "ding5f2c8a0e1b3d4c6a",
        agent_id=int(env("DINGTALK_AGENT_ID") or "3000000001"),
        callback_token=env("DINGTALK_CALLBACK_TOKEN") or "dtsimtoken01",
        aes_key=env("DINGTALK_AES_KEY") or "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    )
    try:
        requests.get(sandbox.admin_url("state"), timeout=5).raise_for_status()
    except requests.RequestException as e:
        pytest.fail(f"the DingTalk sandbox at {url} does not answer: {e}", pytrace=False)
    return sandbox


@pytest.fixture(scope="module")
def fresh_dingtalk(dingtalk_sandbox: DingTalkSandbox) -> DingTalkSandbox:
    """The sandbox back at its seed (organisation, tokens, counters, events) for one module."""
    dingtalk_sandbox.admin_post("reset")
    return dingtalk_sandbox


@pytest.fixture(scope="session")
def hub_url() -> str:
    """The running hub (`dingbridge serve`) that scripts/interop started."""
    return require_env(
        "DINGBRIDGE_URL",
        "the hub started by scripts/interop (`dingbridge serve` with the sandbox's [connections.dingtalk])",
    ).rstrip("/")


@dataclass(frozen=True)
class KingdeeSandbox:
    """Where the Kingdee simulator listens and the WebAPI app it was seeded with."""

    url: str  # the K3Cloud base, with its trailing `/k3cloud/`
    acct_id: str
    user_name: str
    app_id: str
    app_secret: str

    def admin_url(self, path: str) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/_sandbox/kingdee/{path.lstrip('/')}"

    def admin_post(self, path: str, body=None):
        r = requests.post(self.admin_url(path), json=body if body is not None else {}, timeout=10)
        assert r.status_code == 200, f"POST {path}: HTTP {r.status_code} {r.text[:500]}"
        return r.json()


@pytest.fixture(scope="session")
def kingdee_sandbox() -> KingdeeSandbox:
    url = require_env(
        "KINGDEE_SANDBOX_URL",
        "the Kingdee simulator's base URL ([connections.kingdee] base_url of `dingbridge sandbox --config-out`)",
    )
    env = os.environ.get
    return KingdeeSandbox(
        url=url,
        acct_id=env("KINGDEE_ACCT_ID") or "65f0a1b2c3d4e5",
        user_name=env("KINGDEE_USER_NAME") or "webapi",
        app_id=env("KINGDEE_APP_ID") or "300001_422C1/iIyuH4R+Ws526A2/yLyrX6RrOs",
        app_secret=env("KINGDEE_APP_SECRET") or "a1b2c3d4e5f60718293a4b5c6d7e8f90",
    )


def dingbridge_bin() -> str:
    """The binary under test: DINGBRIDGE_BIN (scripts/interop exports it) or the debug build."""
    explicit = os.environ.get("DINGBRIDGE_BIN", "").strip()
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    if not target.is_absolute():
        target = ROOT / target
    built = target / "debug" / "dingbridge"
    if built.exists():
        return str(built)
    pytest.fail(
        f"DINGBRIDGE_BIN is not set and {built} does not exist: run scripts/interop "
        "(it builds the binary and exports DINGBRIDGE_BIN)",
        pytrace=False,
    )


def toml_str(s: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(s, ensure_ascii=False)


def toml_set(text: str, section: str, key: str, value: str) -> str:
    """`key = value` in `[section]` of a TOML text (value already TOML-quoted)."""
    lines = text.split("\n")
    current, done = None, False
    for i, line in enumerate(lines):
        header = re.match(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$", line)
        if header:
            current = header.group(1).strip()
            continue
        m = re.match(rf"^(\s*{re.escape(key)}\s*=\s*)(\"[^\"]*\"|\S+)(.*)$", line)
        if current == section and m and not done:
            lines[i] = f"{m.group(1)}{value}{m.group(3)}"
            done = True
    assert done, f"examples/dingbridge.toml has no `{key}` in [{section}]; update tests/interop/conftest.py"
    return "\n".join(lines)


def example_config(
    dingtalk: DingTalkSandbox, kingdee: KingdeeSandbox, store_url: str, **connections: str
) -> str:
    """examples/dingbridge.toml with the store at `store_url`, the `dingtalk` and `kingdee`
    connections pointed at the sandboxes, and `base_url` of each named HTTP connection replaced
    (e.g. `oa="http://127.0.0.1:5678/"`)."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    text = toml_set(text, "store", "url", toml_str(store_url))
    for key, value in [
        ("corp_id", toml_str(dingtalk.corp_id)),
        ("agent_id", str(dingtalk.agent_id)),
        ("app_key", toml_str(dingtalk.app_key)),
        ("app_secret", toml_str(dingtalk.app_secret)),
        ("callback_token", toml_str(dingtalk.callback_token)),
        ("encoding_aes_key", toml_str(dingtalk.aes_key)),
        ("oapi_base_url", toml_str(dingtalk.url)),
        ("api_base_url", toml_str(dingtalk.api_url)),
    ]:
        text = toml_set(text, "connections.dingtalk", key, value)
    for key, value in [
        ("base_url", toml_str(kingdee.url)),
        ("acct_id", toml_str(kingdee.acct_id)),
        ("user_name", toml_str(kingdee.user_name)),
        ("app_id", toml_str(kingdee.app_id)),
        ("app_secret", toml_str(kingdee.app_secret)),
    ]:
        text = toml_set(text, "connections.kingdee", key, value)
    for name, base_url in connections.items():
        text = toml_set(text, f"connections.{name}", "base_url", toml_str(base_url))
    return text
