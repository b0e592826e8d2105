"""JupyterLab for people: the course's labextensions, and lab 00 run end to end in a real browser.

``jupyter labextension list`` must show nbgrader's, the widget manager (ipywidgets), jupyterlab-plotly and
anywidget, enabled. For the browser test, JupyterLab starts with the command ``dslearn lab`` uses
(``dslearn.course.lab.lab_command``) on 127.0.0.1, on a free port, with a token, in a temporary copy of the
course (so nothing in the repository changes) and with its settings, workspaces and runtime files in
temporary folders. Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright, which never
downloads a browser of its own here) opens labs/00-welcome/00-welcome.ipynb and runs every cell through
the Run menu with the lab in interactive mode (neither DSLEARN_HEADLESS nor NBGRADER_EXECUTION set). The
test checks that nbgrader's menu and Validate button are there, that every code cell ran without an error,
that plotly figures were drawn (jupyterlab-plotly's mimetype renderer), and that the ipywidgets slider was
drawn and drives the figure through the kernel. A screenshot of the notebook is saved in the test's
temporary folder; its path is printed and recorded as the test property ``screenshot`` (shown by
``pytest -rA`` and in JUnit XML).

The browser test skips, saying why, when /usr/bin/chromium or the playwright package is missing; CI installs
both (.ci/run and the ``test`` extra).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dslearn.course.lab import lab_command

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[1]
LAB_NOTEBOOK = "labs/00-welcome/00-welcome.ipynb"
SERVER_START_SECONDS = 90
KERNEL_START_MS = 120_000
RUN_ALL_MS = 240_000
RENDER_MS = 60_000
# The user settings of this test's JupyterLab: every cell in the DOM (by default JupyterLab 4 attaches cells
# out of view later, or not at all) and no question about fetching Jupyter news over the network.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
KERNEL_IDLE = """() => {
    const indicator = document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']");
    const status = [...document.querySelectorAll('.jp-StatusBar-TextItem')].map(item => item.textContent);
    return indicator !== null && status.some(text => text.endsWith('| Idle'));
}"""
ALL_CELLS_RAN = """() => {
    const prompts = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt');
    return [...prompts].every(prompt => /\\[\\d+\\]/.test(prompt.textContent));
}"""

# The labextensions the course needs, as `jupyter labextension list` names them.
COURSE_EXTENSIONS = ("@jupyter/nbgrader", "@jupyter-widgets/jupyterlab-manager", "jupyterlab-plotly", "anywidget")


def test_jupyterlab_has_the_nbgrader_widget_and_plotly_extensions():
    listing = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True,
                             text=True, timeout=120)
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)  # without its colours
    assert "JupyterLab v4." in text
    for extension in COURSE_EXTENSIONS:
        assert re.search(rf"^\s*{re.escape(extension)} v\S+ enabled OK", text, re.MULTILINE), f"{extension}:\n{text}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(process: subprocess.Popen, base_url: str, token: str, log: Path) -> None:
    """Poll the server's status API until it answers; fail with its log when it dies or takes too long."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with status {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {SERVER_START_SECONDS} s:\n{log.read_text()[-4000:]}")


def stop_server(process: subprocess.Popen, base_url: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then make sure it is gone."""
    if process.poll() is None:
        try:
            request = urllib.request.Request(f"{base_url}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(request, timeout=10).close()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on a temporary copy of the course: yields (base URL, token)."""
    root = tmp_path / "course-copy"
    for folder in ("course", "labs"):
        shutil.copytree(REPO / folder, root / folder)
    state = tmp_path / "jupyter"
    for plugin, settings in LAB_SETTINGS.items():
        settings_file = state / "settings" / f"{plugin}.jupyterlab-settings"
        settings_file.parent.mkdir(parents=True, exist_ok=True)
        settings_file.write_text(json.dumps(settings))
    env = {name: value for name, value in os.environ.items() if name not in ("DSLEARN_HEADLESS", "NBGRADER_EXECUTION")}
    env.update(JUPYTERLAB_SETTINGS_DIR=str(state / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(state / "runtime"), JUPYTER_CONFIG_DIR=str(state / "config"),
               PYTHONUNBUFFERED="1")
    port, token = free_port(), secrets.token_hex(16)
    command = lab_command(root, port=port, token=token, ip="127.0.0.1", browser=False,
                          as_root=hasattr(os, "geteuid") and os.geteuid() == 0)
    assert command[0] == sys.executable
    log = tmp_path / "jupyterlab.log"
    base_url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(process, base_url, token, log)
        yield base_url, token
    finally:
        stop_server(process, base_url, token)


@pytest.fixture
def page():
    """A page of headless Debian Chromium (the test skips when it or Playwright is missing)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is missing (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


def click_menu(page, menu: str, item: str) -> None:
    """Open a menu of the menu bar and click one of its items, by their labels."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-content .lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$")).click()


@pytest.mark.browser
@pytest.mark.slow
def test_lab_00_runs_in_jupyterlab_with_plotly_figures_and_a_working_widget(page, jupyterlab, tmp_path,
                                                                            record_property):
    base_url, token = jupyterlab
    screenshot = tmp_path / "00-welcome.png"
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{base_url}/lab/tree/{LAB_NOTEBOOK}?token={token}", wait_until="domcontentloaded",
                  timeout=RENDER_MS)
        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        notebook.locator(".jp-Cell").first.wait_for(timeout=RENDER_MS)
        # The kernel is ready when the toolbar's indicator and the status bar both say Idle.
        page.wait_for_function(KERNEL_IDLE, timeout=KERNEL_START_MS)

        # nbgrader's labextension adds its menu and the Validate button to the notebook's toolbar.
        assert page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).count() == 1
        assert notebook.locator(".jp-Toolbar").get_by_text("Validate", exact=True).count() == 1

        click_menu(page, "Run", "Run All Cells")
        code_prompts = notebook.locator(".jp-CodeCell .jp-InputPrompt")
        count = code_prompts.count()
        assert count >= 10, f"expected the lab's code cells, found {count}"
        # Every code cell has an execution count ([n]:, not [*]: or [ ]:), then the kernel is idle again.
        page.wait_for_function(ALL_CELLS_RAN, timeout=RUN_ALL_MS)
        page.wait_for_function(KERNEL_IDLE, timeout=RUN_ALL_MS)

        outputs = notebook.locator(".jp-OutputArea-output")
        tracebacks = outputs.filter(has_text="Traceback")
        assert tracebacks.count() == 0, f"a cell failed:\n{tracebacks.first.inner_text()[:3000]}"
        assert outputs.filter(has_text="Visible tests passed.").count() == 1
        assert outputs.filter(has_text="Headless run").count() == 0, "the lab ran in headless mode"

        # plotly: the tangent figure (section 3) and the one the slider's interact output draws.
        plots = notebook.locator(".jp-OutputArea .js-plotly-plot")
        plots.nth(1).wait_for(timeout=RENDER_MS)
        assert plots.count() == 2
        plots.first.locator(".main-svg").first.wait_for(timeout=RENDER_MS)
        assert plots.first.locator(".scatterlayer .trace").count() == 3  # f, f' and the tangent

        # ipywidgets: the slider is drawn, and moving it reaches the kernel, which redraws the figure.
        slider = notebook.locator(".jp-OutputArea .widget-slider")
        slider.wait_for(timeout=RENDER_MS)
        widget_figure_title = plots.nth(1).locator(".gtitle")
        widget_figure_title.wait_for(timeout=RENDER_MS)
        assert "x = 1.0" in widget_figure_title.text_content()
        slider.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea .gtitle')]
                    .some(title => title.textContent.includes('x = 1.1'))""", timeout=RENDER_MS)
        assert not errors, f"JavaScript errors in the page: {errors}"
    finally:
        page.screenshot(path=str(screenshot), full_page=True)
        record_property("screenshot", str(screenshot))
        print(f"screenshot of the notebook: {screenshot}")
