"""In a real browser (Debian's Chromium, driven by Playwright): the docs page and its "try it",
a page on another origin calling the API with fetch (CORS), and a forced 429's Retry-After.

Screenshots land in build/screenshots/ (docs/ keeps a copy for the README)."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import KEY_FOR_PLAN, ROOT, RunningServer, free_port

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "build" / "screenshots"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium: `make test` installs Debian's chromium"
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def test_docs_page_try_it_shows_the_image(server, page):
    page.goto(server.url + "/docs")
    operation = page.locator("#operations-generation-generateImage")
    operation.wait_for(timeout=20_000)
    assert page.locator(".info .title").inner_text().startswith("Image API")
    operation.locator(".opblock-summary").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=20_000)
    assert status.inner_text().strip().startswith("200")
    image = page.locator("#preview-image")
    image.wait_for(state="visible", timeout=10_000)
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    assert page.evaluate("document.getElementById('preview-image').naturalWidth") == 1024
    caption = page.locator("#preview-caption").inner_text()
    assert "sdxl-lightning" in caption and "8 steps" in caption
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "docs-page.png"))
    data_url = image.get_attribute("src")
    (SCREENSHOTS / "placeholder.png").write_bytes(base64.b64decode(data_url.split(",", 1)[1]))


def test_docs_page_tables_the_rules(server, page):
    page.goto(server.url + "/")  # redirected to /docs
    assert page.url == server.url + "/docs"
    rows = page.locator("#catalog tbody tr")
    rows.first.wait_for(timeout=20_000)
    cells = [row.split("\t") for row in rows.all_inner_texts()]
    assert len(cells) == 9
    lightning = next(row for row in cells if row[0] == "sdxl-lightning")
    assert lightning[2:7] == ["8", "4", "50", "yes", "basic, pro, enterprise"]
    plans = [row.split("\t") for row in page.locator("#plans tbody tr").all_inner_texts()]
    assert plans[0][:2] == ["free", "10"]
    assert plans[0][2] == "flux-schnell, sdxl-turbo, sd-1.5"
    # The request body reads as a schema, not as "object | ((any & any & ...) & any)".
    operation = page.locator("#operations-generation-generateImage")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("tab", name="Schema").first.click()
    schema = operation.locator(".model-box").first
    schema.wait_for(timeout=10_000)
    assert "any &" not in operation.inner_text()
    assert "in the table at the top of this page" in schema.inner_text()
    assert "num_inference_steps" in schema.inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#rules").screenshot(path=str(SCREENSHOTS / "docs-rules.png"))


PAGE = """<!doctype html><html><body>
<p>status <span id="status">-</span>, limited <span id="limited">-</span></p>
<img id="image" alt="generated">
<script>
const api = %(api)s, key = %(key)s;
const body = JSON.stringify({prompt: "a lighthouse at dusk", width: 512, height: 256});
async function run() {
  try {
    const res = await fetch(api + "/api/v1/generate", {method: "POST", body,
      headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"}});
    const data = await res.json();
    document.getElementById("image").src = data.images[0].data_url;
    document.getElementById("status").textContent = String(res.status);
    const limited = await fetch(api + "/api/v1/generate", {method: "POST", body,
      headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json",
                "Prefer": "code=429"}});
    const problem = await limited.json();
    document.getElementById("limited").textContent =
      limited.status + " retry-after=" + limited.headers.get("Retry-After") + " " + problem.code;
  } catch (error) {
    document.getElementById("status").textContent = "blocked";
  }
}
run();
</script></body></html>"""


@pytest.fixture
def other_origin():
    """A static page served from another origin (another port) than the API."""
    pages = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}", pages
    httpd.shutdown()


def _page_for(api: str) -> str:
    return PAGE % {"api": json.dumps(api), "key": json.dumps(KEY_FOR_PLAN["free"])}


def test_a_page_on_another_origin_gets_the_image_and_sees_retry_after(server, page, other_origin):
    origin, pages = other_origin
    pages["/app.html"] = _page_for(server.url)
    page.goto(origin + "/app.html")
    page.wait_for_function("document.getElementById('limited').textContent !== '-'", timeout=20_000)
    assert page.locator("#status").inner_text() == "200"
    assert page.evaluate("document.getElementById('image').naturalWidth") == 512
    assert page.evaluate("document.getElementById('image').naturalHeight") == 256
    assert page.locator("#limited").inner_text() == "429 retry-after=30 rate_limited"


def test_a_locked_origin_list_blocks_other_pages(page, other_origin):
    origin, pages = other_origin
    locked = RunningServer("--workers", "1", "--cors-origins", "http://allowed.example")
    try:
        pages["/app.html"] = _page_for(locked.url)
        page.goto(origin + "/app.html")
        page.wait_for_function(
            "document.getElementById('status').textContent !== '-'", timeout=20_000
        )
        assert page.locator("#status").inner_text() == "blocked"
    finally:
        locked.stop()
