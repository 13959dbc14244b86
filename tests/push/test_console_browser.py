"""The review console in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
sign in, open a pending commit, read its findings, diff and remote code, approve it, see it
served; author-controlled text stays inert; a form without its CSRF token is refused.

Screenshots go to the test's tmp dir, and to ``$MLWARDEN_SCREENSHOTS`` when set (that is how
docs/images/console-*.png are made: ``MLWARDEN_SCREENSHOTS=docs/images pytest -k browser``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from push.support import PushServer, run_client
from push.test_console_http import CARD, EVIL_MESSAGE, EVIL_NAME

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

MODELING = '''import torch
from transformers import PretrainedConfig, PreTrainedModel


class TinyConfig(PretrainedConfig):
    model_type = "tiny-custom"


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        self.proj = torch.nn.Linear(4, 4)


def fetch_extra_weights(url):
    import urllib.request

    return urllib.request.urlopen(url).read()
'''


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium; see .ci/system.sh)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


class Shots:
    def __init__(self, tmp: Path) -> None:
        self.dirs = [tmp / "shots"]
        if os.environ.get("MLWARDEN_SCREENSHOTS"):
            self.dirs.append(Path(os.environ["MLWARDEN_SCREENSHOTS"]))
        for d in self.dirs:
            d.mkdir(parents=True, exist_ok=True)

    def take(self, page: Any, name: str, **kw: Any) -> None:
        path = self.dirs[0] / f"console-{name}.png"
        page.screenshot(path=str(path), **kw)
        for d in self.dirs[1:]:
            shutil.copyfile(path, d / path.name)


def _page(chromium: Any) -> tuple[Any, Any, list[str], list[str]]:
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    dialogs: list[str] = []
    console_errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    return ctx, page, dialogs, console_errors


def _login(page: Any, srv: PushServer, token: str) -> None:
    page.goto(f"{srv.url}/ui/")
    assert "/ui/login" in page.url  # not signed in yet
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{srv.url}/ui/")


def _custom_repo(tmp: Path) -> Path:
    d = tmp / "custom"
    d.mkdir()
    (d / "modeling_tiny.py").write_text(MODELING)
    (d / "config.json").write_text(json.dumps({
        "model_type": "tiny-custom", "auto_map": {"AutoConfig": "modeling_tiny.TinyConfig",
                                                  "AutoModel": "modeling_tiny.TinyModel"}}))
    (d / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Tiny custom model\n\n"
                                 "A **tiny** model with custom code, for the review demo.\n")
    return d


def test_review_flow_in_chromium(chromium: Any, serve, tiny_model: Path,  # type: ignore[no-untyped-def]
                                 tmp_path: Path) -> None:
    srv = serve()
    dev = srv.token("ci-pipeline", "acme:write", owner="dev-team")
    reviewer = srv.token("alice", "acme:approve", "*:admin", owner="alice")
    reader = srv.token("reader", "acme:read")
    folder = _custom_repo(tmp_path)
    shutil.copy(tiny_model / "model.safetensors", folder / "model.safetensors")
    from corpus.containers import payload_pickle

    evil = tmp_path / "pytorch_model.bin"
    evil.write_bytes(payload_pickle(tmp_path / "marker"))
    res = run_client(tmp_path, srv.url, dev, [
        {"op": "create_repo", "repo": "acme/tiny-custom"},
        {"op": "upload_folder", "repo": "acme/tiny-custom", "folder": str(folder),
         "message": "Add the tiny custom model"},
        {"op": "upload_file", "repo": "acme/tiny-custom", "path": "pytorch_model.bin",
         "local": str(evil), "stop_on_error": False}])
    assert res[1]["ok"] and not res[2]["ok"], res
    cid = res[1]["oid"]
    shots = Shots(tmp_path)
    ctx, page, dialogs, errors = _page(chromium)

    page.goto(f"{srv.url}/ui/login")
    shots.take(page, "login")
    _login(page, srv, reviewer)
    assert page.locator("#pending").get_by_text(cid[:12]).count() == 1
    assert "policy-scan-malicious" in page.inner_text("#refusals")
    shots.take(page, "dashboard", full_page=True)

    page.click(f"#pending a[href$='{cid}']")
    page.wait_for_url(f"**/commits/{cid}")
    assert page.inner_text("#state") == "pending"
    findings = page.inner_text("#findings")
    assert "policy-remote-code" in findings and "modeling_tiny.py" in findings
    changes = page.inner_text("#changes")
    assert "model.safetensors" in changes and "added" in changes
    code = page.locator("#remote-code")
    assert "modeling_tiny.py" in code.inner_text()
    hit = code.locator("tr.hit")
    assert hit.count() >= 1 and "urllib" in " ".join(hit.all_inner_texts())
    shots.take(page, "review", full_page=True)

    page.fill("#note", "custom code reviewed: fetch_extra_weights is never called on load")
    page.click("#approve")
    page.wait_for_url("**msg=approved")
    assert page.inner_text("#state") == "approved" and "now served" in page.inner_text("#flash")
    shots.take(page, "approved")

    # Served: a reader's client now gets the approved commit.
    r = httpx.get(f"{srv.url}/acme/tiny-custom/resolve/main/config.json",
                  headers={"authorization": f"Bearer {reader}"})
    assert r.status_code == 200 and r.headers["x-repo-commit"] == cid
    page.goto(f"{srv.url}/ui/repos/acme/tiny-custom")
    assert "Tiny custom model" in page.inner_text("#model-card")
    assert page.locator("#refs").get_by_text(cid[:12]).count() == 1
    shots.take(page, "repository", full_page=True)
    page.goto(f"{srv.url}/ui/audit?repo=acme/tiny-custom")
    assert "push" in page.inner_text("#audit")
    shots.take(page, "audit")
    page.goto(f"{srv.url}/ui/log")
    assert "verified" in page.inner_text("#log-status")
    shots.take(page, "approval-log")
    page.goto(f"{srv.url}/ui/tokens")
    assert "ci-pipeline" in page.inner_text("#tokens")
    assert not dialogs and not [e for e in errors if "Content Security Policy" in e]
    ctx.close()


def _assert_inert(page: Any, dialogs: list[str]) -> None:
    assert not dialogs
    assert page.evaluate("typeof window.__xss") == "undefined"
    # Only the console's own script, and no element an author's text could have created.
    assert page.evaluate("[...document.scripts].map(s => s.src)") == [
        page.url.split("/ui/")[0] + "/ui/static/console.js"]
    for sel in ("main script", "main iframe", "main svg", "main img", "[onerror]", "[onload]",
                "a[href^='javascript:']"):
        assert page.locator(sel).count() == 0, sel


def test_author_text_renders_inert(chromium: Any, serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv = serve()
    dev = srv.token("dev", "acme:write")
    reviewer = srv.token("rev", "acme:approve")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "README.md").write_text(CARD)
    (folder / EVIL_NAME).write_text("hi\n")
    res = run_client(tmp_path, srv.url, dev, [
        {"op": "create_repo", "repo": "acme/xss"},
        {"op": "upload_folder", "repo": "acme/xss", "folder": str(folder),
         "message": EVIL_MESSAGE}])
    cid = res[1]["oid"]
    ctx, page, dialogs, _ = _page(chromium)
    _login(page, srv, reviewer)
    page.goto(f"{srv.url}/ui/repos/acme/xss?rev={cid}")
    card = page.inner_text("#model-card")
    assert "<script>window.__xss=1</script>" in card  # shown as text
    assert "[click](javascript:window.__xss=4)" in card
    assert EVIL_NAME in page.inner_text("#files")
    _assert_inert(page, dialogs)
    page.goto(f"{srv.url}/ui/repos/acme/xss/commits/{cid}")
    assert page.inner_text("h1.commit-title") == EVIL_MESSAGE
    assert EVIL_NAME in page.inner_text("#changes")
    _assert_inert(page, dialogs)
    page.goto(f"{srv.url}/ui/")
    _assert_inert(page, dialogs)
    ctx.close()


def test_form_post_without_csrf_token_is_refused(chromium: Any, serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv = serve()
    dev = srv.token("dev", "acme:write")
    reviewer = srv.token("rev", "acme:approve")
    f = tmp_path / "n.md"
    f.write_text("notes\n")
    res = run_client(tmp_path, srv.url, dev, [
        {"op": "create_repo", "repo": "acme/csrf"},
        {"op": "upload_file", "repo": "acme/csrf", "path": "n.md", "local": str(f)}])
    cid = res[1]["oid"]
    ctx, page, _, _ = _page(chromium)
    _login(page, srv, reviewer)
    page.goto(f"{srv.url}/ui/repos/acme/csrf/commits/{cid}")
    # A same-site form that omits the token (what a script injected into a page would send).
    page.evaluate("""(action) => {
        const f = document.createElement('form');
        f.method = 'post'; f.action = action;
        const d = document.createElement('input');
        d.name = 'decision'; d.value = 'approve'; f.appendChild(d);
        document.body.appendChild(f); f.submit();
    }""", f"/ui/repos/acme/csrf/commits/{cid}/review")
    page.wait_for_load_state()
    assert "CSRF" in page.inner_text("main")
    assert not srv.store.commit("acme/csrf", cid).approved
    # The real form, with its token, works.
    page.goto(f"{srv.url}/ui/repos/acme/csrf/commits/{cid}")
    page.click("#approve")
    page.wait_for_url("**msg=approved")
    assert srv.store.commit("acme/csrf", cid).approved
    ctx.close()
