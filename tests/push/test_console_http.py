"""Review console security over plain HTTP: session cookie, CSRF, CSP, escaping of
everything a model author controls, access rules. (The browser tests repeat the escaping
and CSRF checks in Chromium.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlwarden.registry.console.security import CSP
from mlwarden.store.push import PushStore
from push.support import ConsoleClient, run_client

XSS = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">"
CARD = f"""---
license: mit
tags: ['{XSS}']
---
# Model card {XSS}

<svg onload="window.__xss=3"></svg> [click](javascript:window.__xss=4)

<iframe src="https://evil.example"></iframe>
"""
EVIL_NAME = "<img src=x onerror=alert(1)>.txt"
EVIL_MESSAGE = "<script>window.__xss=5</script> update"


@pytest.fixture
def xss_push(serve, tmp_path: Path):  # type: ignore[no-untyped-def]
    srv = serve()
    dev = srv.token("dev", "acme:write", owner="dev")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "README.md").write_text(CARD)
    (folder / EVIL_NAME).write_text("hi\n")
    (folder / "config.json").write_text('{"note": "' + XSS.replace('"', "'") + '"}')
    res = run_client(tmp_path, srv.url, dev, [
        {"op": "create_repo", "repo": "acme/xss"},
        {"op": "upload_folder", "repo": "acme/xss", "folder": str(folder),
         "message": EVIL_MESSAGE}])
    assert res[1]["ok"], res[1]
    return srv, res[1]["oid"]


def _login(srv, *scopes: str, owner: str = "rev") -> ConsoleClient:  # type: ignore[no-untyped-def]
    c = ConsoleClient(srv.url)
    r = c.login(srv.token(owner, *scopes, owner=owner))
    assert r.status_code == 303, r.text
    return c


def test_session_cookie_flags_and_security_headers(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve()
    c = ConsoleClient(srv.url)
    page = c.get("/ui/login")
    assert page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    r = c.login(srv.token("rev", "acme:approve"))
    cookie = next(v for k, v in r.headers.multi_items()
                  if k == "set-cookie" and v.startswith("mlw_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert re.fullmatch(r"mlw_console=[A-Za-z0-9_-]{43}", cookie.split(";")[0])
    assert c.get("/ui/").status_code == 200
    for asset in ("console.css", "console.js"):
        a = c.get(f"/ui/static/{asset}")
        assert a.status_code == 200 and a.headers["content-security-policy"] == CSP
    assert c.get("/ui/static/../app.py").status_code == 404

    # Behind a TLS proxy (--public-url https://...) every console cookie is Secure, so this
    # plain-http test client could not even send the login form's nonce back.
    tls = serve(public_url="https://models.example")
    r = ConsoleClient(tls.url).get("/ui/login")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("mlw_login=") and "Secure" in cookie and "HttpOnly" in cookie


def test_login_rules_and_revocation_ends_the_session(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve()
    c = ConsoleClient(srv.url)
    r = c.login("mlw_0123456789ab_" + "x" * 43)
    assert r.status_code == 401 and "not valid" in r.text
    r = c.login(srv.token("reader", "acme:read"))
    assert r.status_code == 401 and "only read" in r.text
    page = c.get("/ui/login")  # login form without its nonce cookie value: refused
    r = c.http.post("/ui/login", data={"csrf": "wrong", "token": "x"})
    assert r.status_code == 403 and page.status_code == 200
    assert c.get("/ui/").status_code == 303  # not signed in: to the login page
    info, text = srv.store.create_token("rev", ["acme:approve"])
    assert c.login(text).status_code == 303 and c.get("/ui/").status_code == 200
    srv.store.revoke_token(info.id)
    r = c.get("/ui/")
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
    assert c.login("x").status_code == 401  # open redirect guard below
    ok = ConsoleClient(srv.url)
    page = ok.get("/ui/login?next=//evil.example/")
    assert 'value="/ui/"' in page.text


def test_author_controlled_text_is_escaped(xss_push) -> None:  # type: ignore[no-untyped-def]
    srv, cid = xss_push
    c = _login(srv, "acme:approve")
    pages = [c.get(f"/ui/repos/acme/xss?rev={cid}").text,
             c.get(f"/ui/repos/acme/xss/commits/{cid}").text, c.get("/ui/").text,
             c.get("/ui/repos?q=xss").text, c.get("/ui/audit").text]
    for html in pages:
        assert "<script>window.__xss" not in html
        assert "<img src=x" not in html and "<svg" not in html and "<iframe" not in html
        assert "javascript:" not in html.replace("javascript:window.__xss=4)", "")
    repo_page, commit_page = pages[0], pages[1]
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in repo_page  # shown, as text
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in repo_page  # the file name
    assert "&lt;script&gt;window.__xss=5&lt;/script&gt; update" in commit_page  # the message
    assert "[click](javascript:window.__xss=4)" in repo_page  # link refused: left as text
    # Finding messages quote file content too; the config.json note above came back escaped.
    assert "https://evil.example" not in re.sub(r"&lt;iframe[^<]*", "", repo_page)


def test_forms_without_the_csrf_token_are_refused(xss_push) -> None:  # type: ignore[no-untyped-def]
    srv, cid = xss_push
    c = _login(srv, "acme:approve", "*:admin")
    url = f"/ui/repos/acme/xss/commits/{cid}/review"
    for data in ({"decision": "approve"}, {"decision": "approve", "csrf": "forged"},
                 {"decision": "approve", "csrf": ""}):
        r = c.http.post(url, data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    page = c.get(f"/ui/repos/acme/xss/commits/{cid}").text
    r = c.http.post(url, data={"decision": "approve", "csrf": c.field(page)},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403  # right token, wrong origin
    assert not srv.store.commit("acme/xss", cid).approved
    assert c.http.post("/ui/tokens", data={"name": "x", "scopes": "*:admin"}).status_code == 403
    assert c.http.post("/ui/logout", data={}).status_code == 403
    assert len(srv.store.tokens()) == 2
    r = c.review("acme/xss", cid, "approve")
    assert r.status_code == 303 and srv.store.commit("acme/xss", cid).approved


def test_access_rules(xss_push) -> None:  # type: ignore[no-untyped-def]
    srv, cid = xss_push
    writer = _login(srv, "acme:write", owner="dev2")
    page = writer.get(f"/ui/repos/acme/xss/commits/{cid}")
    assert page.status_code == 200 and 'id="review-form"' not in page.text
    assert writer.review("acme/xss", cid, "approve").status_code == 403
    assert writer.get("/ui/tokens").status_code == 403
    assert writer.get("/ui/audit").status_code == 403
    other = _login(srv, "other:approve", owner="o")
    assert other.get("/ui/repos/acme/xss").status_code == 404  # invisible, not forbidden
    assert "acme/xss" not in other.get("/ui/repos").text
    admin = _login(srv, "*:admin", owner="root")
    page = admin.get("/ui/tokens").text
    r = admin.http.post("/ui/tokens", data={"csrf": admin.field(page), "name": "new",
                                            "owner": "eve", "scopes": "acme:read", "days": "7"})
    assert r.status_code == 200 and re.search(r"mlw_[0-9a-f]{12}_", r.text)
    first = srv.store.commits("acme/xss")[0]  # server-generated, never scanned at push time
    page = admin.get(f"/ui/repos/acme/xss/commits/{first.id}")
    assert page.status_code == 200 and ".gitattributes" in page.text and "approved" in page.text
    assert PushStore.open(srv.store).report("acme/xss", first.id) is not None  # kept
    log = admin.get("/ui/log").text
    assert 'id="log-status"' in log and "verified" in log
    audit = admin.get("/ui/audit?action=push").text
    assert cid[:12] in audit
