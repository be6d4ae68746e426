"""The web console in a real browser (headless Chromium from Debian, driven by Selenium) against
the local stack: the pages are served by the console function through the front, and everything
they show comes from the Connect API, called from the page as the SDK calls it.

Every test ends by reading the browser's log: no page error, no failed request, unless the test
is about one. ``CONSOLE_SCREENSHOT=docs/console-run.png`` refreshes the screenshot in docs/console.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from flyteidl2.common.identifier_pb2 import RunIdentifier, TriggerName
from flyteidl2.task import common_pb2
from flyteidl2.task import task_definition_pb2 as td
from flyteidl2.task import task_service_pb2 as ts
from flyteidl2.trigger import trigger_definition_pb2 as trd
from flyteidl2.trigger import trigger_service_pb2 as tr
from flyteidl2.workflow import run_service_pb2 as runs
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from functions.console.site import CALLBACK_PATH
from local_stack.auth import BROWSER_CLIENT
from runplane.flyte import phases
from tests.builders import DOMAIN, PROJECT, child_task_action, create_run_request, task_spec
from tests.conftest import unique_name, wait_for
from tests.e2e.console_demo import post, seed_demo_run, set_status

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"  # Debian's (scripts/setup installs it), and its driver
CHROMEDRIVER = "/usr/bin/chromedriver"
# No network beyond loopback: nothing that phones home, a fresh profile every session.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1000",
]
SCREENSHOT_ENV = "CONSOLE_SCREENSHOT"
RUNS_PAGE = f"/v2/domain/{DOMAIN}/project/{PROJECT}/runs"


class Console:
    """The browser, pointed at the stack's front."""

    def __init__(self, driver, endpoint: str) -> None:
        self.driver = driver
        self.endpoint = endpoint

    def open(self, path: str) -> None:
        self.driver.get(self.endpoint + path)

    def find(self, css: str, *, timeout: float = 15.0):
        return wait_for(lambda: self.driver.find_elements(By.CSS_SELECTOR, css), timeout=timeout, what=css)[0]

    def text(self, css: str, *, timeout: float = 15.0) -> str:
        def read() -> str | None:
            try:
                found = self.driver.find_elements(By.CSS_SELECTOR, css)
                return found[0].text if found and found[0].text else None
            except StaleElementReferenceException:  # re-rendered between finding and reading
                return None

        return wait_for(read, timeout=timeout, what=f"text of {css}")

    def attribute(self, css: str, name: str) -> str | None:
        try:
            found = self.driver.find_elements(By.CSS_SELECTOR, css)
            return found[0].get_attribute(name) if found else None
        except StaleElementReferenceException:
            return None

    def wait_attribute(self, css: str, name: str, value: str, *, timeout: float = 20.0) -> None:
        wait_for(lambda: self.attribute(css, name) == value, timeout=timeout, what=f"{css} [{name}={value}]")

    def click(self, css: str, *, timeout: float = 15.0) -> None:
        def attempt() -> bool:
            try:
                self.find(css, timeout=timeout).click()
                return True
            except StaleElementReferenceException:
                return False

        wait_for(attempt, timeout=timeout, what=f"click {css}")

    def phase_of(self, action: str) -> str | None:
        return self.attribute(f'.row[data-action="{action}"] [data-phase]', "data-phase")

    def errors(self) -> list[dict]:
        """The browser log's errors since the last call (page errors, failed requests)."""
        return [entry for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def browser(stack) -> Iterator[Console]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Chromium is missing: scripts/setup installs chromium and chromium-driver")
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in [*CHROMIUM_ARGS, f"--user-data-dir={profile}"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))  # no Selenium Manager download
    try:
        yield Console(driver, stack.endpoint)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def console(browser: Console) -> Iterator[Console]:
    browser.errors()  # start clean
    yield browser
    assert browser.errors() == []


def create_run(stack, run: str) -> None:
    post(stack.endpoint, "/flyteidl2.workflow.RunService/CreateRun", create_run_request(run))


def run_phase(stack, run: str) -> str:
    answer = post(
        stack.endpoint,
        "/flyteidl2.workflow.RunService/GetRunDetails",
        runs.GetRunDetailsRequest(run_id=RunIdentifier(project=PROJECT, domain=DOMAIN, name=run)),
    )
    return str(answer["details"]["action"]["status"]["phase"])


def run_page(run: str, action: str | None = None) -> str:
    return f"{RUNS_PAGE}/{run}" + (f"?i={action}" if action else "")


def test_the_runs_list_shows_a_run_created_through_the_api(stack, console):
    run = unique_name("ui")
    create_run(stack, run)
    console.open("/")  # the root leads to a project's runs
    console.find(f'tr[data-run="{run}"]')
    assert console.driver.current_url.endswith(RUNS_PAGE)
    assert console.attribute(f'tr[data-run="{run}"] [data-phase]', "data-phase") == "QUEUED"
    assert "hello.main" in console.text(f'tr[data-run="{run}"]')

    console.open(f"{RUNS_PAGE}?phase=SUCCEEDED")  # filtered by phase: the queued run is not listed
    console.find("#runs-table, .empty")
    assert not console.driver.find_elements(By.CSS_SELECTOR, f'tr[data-run="{run}"]')
    console.click(f'a[href="{RUNS_PAGE}"]')  # "Clear"
    console.find(f'tr[data-run="{run}"]')
    console.click(f'tr[data-run="{run}"] a')
    console.wait_attribute("#run-phase", "data-phase", "QUEUED")
    assert console.driver.current_url.endswith(run_page(run))


def test_the_run_page_shows_the_tree_its_phases_timeline_and_the_selected_actions_error_and_logs(stack, console):
    run = unique_name("train-")
    seed_demo_run(endpoint=stack.endpoint, run=run)
    console.open(run_page(run, "c3"))
    expected = {
        "a0": "RUNNING",
        "c1": "SUCCEEDED",
        "c2": "RUNNING",
        "g1": "SUCCEEDED",
        "g2": "RUNNING",
        "c3": "FAILED",
        "c4": "QUEUED",
    }
    wait_for(lambda: {name: console.phase_of(name) for name in expected} == expected, what="every action's phase")
    levels = {name: console.attribute(f'.row[data-action="{name}"]', "aria-level") for name in expected}
    assert levels == {"a0": "1", "c1": "2", "c2": "2", "g1": "3", "g2": "3", "c3": "2", "c4": "2"}
    assert console.text('.row[data-action="c3"] .cell.num') == "2"  # attempts
    assert len(console.driver.find_elements(By.CSS_SELECTOR, ".row .bar")) == len(expected)  # the timeline
    assert "ValueError: accuracy 0.84" in console.text(".action-error")
    assert "batch 3/3: accuracy 0.84" in console.text("#log-lines")  # TailLogs, from the log group
    assert "epochs" in console.text(".literals")  # GetActionData

    console.click('.row[data-action="c1"]')  # another action: its outputs
    console.wait_attribute("#selected-phase", "data-phase", "SUCCEEDED")
    wait_for(lambda: "120000" in (console.text("#action-details") or ""), what="c1's outputs")
    console.click('.row[data-action="c2"] .caret')  # collapse the training step
    wait_for(lambda: console.phase_of("g1") is None, what="g1 hidden")
    assert "?i=c1" in console.driver.current_url

    screenshot = os.environ.get(SCREENSHOT_ENV)
    if screenshot:
        console.click('.row[data-action="c2"] .caret')
        console.click('.row[data-action="c3"]')
        console.text("#log-lines")
        console.driver.set_window_size(1600, 1100)
        console.driver.save_screenshot(screenshot)


def test_a_phase_change_arrives_without_a_reload(stack, console):
    run = unique_name("ui")
    create_run(stack, run)
    post(stack.endpoint, "/flyteidl2.actions.ActionsService/Enqueue", child_task_action(run, "c1"))
    console.open(run_page(run))
    wait_for(lambda: console.phase_of("c1") == "QUEUED", what="c1 queued")
    console.driver.execute_script("window.__same_page = true")

    set_status(stack.endpoint, run, "a0", phases.RUNNING)
    set_status(stack.endpoint, run, "c1", phases.RUNNING)
    wait_for(lambda: console.phase_of("c1") == "RUNNING", timeout=20, what="c1 running on the open page")
    console.wait_attribute("#run-phase", "data-phase", "RUNNING")
    set_status(stack.endpoint, run, "c1", phases.SUCCEEDED)
    wait_for(lambda: console.phase_of("c1") == "SUCCEEDED", timeout=20, what="c1 succeeded on the open page")
    assert console.driver.execute_script("return window.__same_page") is True  # never reloaded


def test_abort_from_the_page(stack, console):
    run = unique_name("ui")
    create_run(stack, run)
    console.open(run_page(run))
    console.click("#abort-run")
    reason = console.find("#abort-dialog input[name=reason]")
    reason.clear()
    reason.send_keys("stopped from the browser test")
    console.click("#abort-dialog-confirm")
    console.wait_attribute("#run-phase", "data-phase", "ABORTED")
    assert run_phase(stack, run) == "ACTION_PHASE_ABORTED"
    wait_for(lambda: not console.driver.find_elements(By.CSS_SELECTOR, "#abort-run"), what="no abort button")
    assert "stopped from the browser test" in console.text(".note")


def test_abort_of_one_action_from_the_page(stack, console):
    run = unique_name("ui")
    create_run(stack, run)
    post(stack.endpoint, "/flyteidl2.actions.ActionsService/Enqueue", child_task_action(run, "c1"))
    set_status(stack.endpoint, run, "a0", phases.RUNNING)
    console.open(run_page(run, "c1"))
    console.click("#abort-action")
    console.click("#abort-dialog-confirm")
    wait_for(lambda: console.phase_of("c1") == "ABORTED", timeout=30, what="c1 aborted")
    # the rest of the run goes on (read once the tree has been drawn again after the abort)
    wait_for(lambda: console.phase_of("a0") == "RUNNING", timeout=10, what="a0 still running")


def test_a_link_to_a_missing_run_is_a_not_found_page(console):
    console.open(run_page(unique_name("missing")))
    assert console.text("[data-view=not-found] h1") == "Run not found"
    assert "← All runs" in console.text("[data-view=not-found]")
    console.open("/v2/no/such/page")
    assert console.text("[data-view=not-found] h1") == "Page not found"


def test_a_failed_call_shows_its_connect_error(stack, browser):
    browser.errors()
    browser.open(f"{RUNS_PAGE}?phase=BOGUS")  # a hand-edited link: ListRuns refuses the filter
    box = browser.text(".error-box")
    assert "invalid_argument" in box and "'ACTION_PHASE_BOGUS' is not a valid phase" in box
    with stack.authentication():  # the page loads without a token; the API refuses the call
        browser.open(RUNS_PAGE)
        assert "unauthenticated" in browser.text(".error-box")
        assert "Unauthorized" in browser.text(".error-box .message")
    failed = [entry["message"] for entry in browser.errors()]
    assert failed and all(re.search(r"status of (400|401)", message) for message in failed), failed


def test_with_authentication_on_the_pages_call_the_api_with_the_token_given(stack, browser):
    run = unique_name("ui")
    create_run(stack, run)
    token = stack.user_headers()["Authorization"].removeprefix("Bearer ")
    with stack.authentication():
        browser.open(RUNS_PAGE)  # the page itself needs no token
        assert "unauthenticated" in browser.text(".error-box")
        browser.click("#token-button")
        browser.find("#token-dialog input[name=token]").send_keys(token)
        browser.click("#token-dialog-confirm")
        browser.find(f'tr[data-run="{run}"]')  # ListRuns, with the token
        assert browser.text("#token-button") == "Token ✓"
        browser.click(f'tr[data-run="{run}"] a')
        browser.wait_attribute("#run-phase", "data-phase", "QUEUED")
    browser.driver.execute_script("sessionStorage.clear()")
    browser.errors()  # the refused calls before the token was given


def test_with_authentication_on_sign_in_at_the_identity_provider_and_come_back(stack, browser):
    """PKCE as the SDK does it: the page asks the API where to sign in, the issuer's page, the code
    exchanged from the browser, and the page the sign-in started on calls the API with the token."""
    run = unique_name("ui")
    create_run(stack, run)
    granted = stack.auth.issuer.granted[BROWSER_CLIENT]
    browser.errors()
    with stack.authentication():
        browser.open(RUNS_PAGE)
        assert "unauthenticated" in browser.text(".error-box")
        browser.click(".error-box [data-sign-in]")  # offered: the API names an authorization endpoint
        browser.find("#approve")
        assert browser.driver.current_url.startswith(stack.auth.issuer.authorization_endpoint + "?")
        browser.find("#consent-code").send_keys(stack.auth.issuer.consent_code)  # the banner's code
        browser.click("#approve")
        browser.find(f'tr[data-run="{run}"]')  # ListRuns, with the token
        assert browser.driver.current_url == stack.endpoint + RUNS_PAGE  # back where it started
        assert browser.text("#token-button") == "Token ✓"
        assert browser.driver.execute_script("return sessionStorage.getItem('flyte-console.sign-in')") is None
    assert stack.auth.issuer.granted[BROWSER_CLIENT] == granted + 1
    browser.driver.execute_script("sessionStorage.clear()")
    failed = [entry["message"] for entry in browser.errors()]
    assert all(re.search(r"status of 401", message) for message in failed), failed  # only before signing in


def test_a_declined_or_foreign_sign_in_is_shown_as_an_error(stack, browser):
    browser.errors()
    with stack.authentication():
        browser.open(RUNS_PAGE)
        browser.click("#sign-in:not([hidden])")  # the top bar's
        browser.click("#deny")
        assert "access_denied" in browser.text(".error-box")
        assert "declined" in browser.text(".error-box .message")
        browser.open(f"{CALLBACK_PATH}?code=someone-elses&state=not-this-tabs")
        assert "state_mismatch" in browser.text(".error-box")
    assert not browser.driver.execute_script("return sessionStorage.getItem('flyte-console.token')")
    failed = [entry["message"] for entry in browser.errors()]
    assert all(re.search(r"status of 401", message) for message in failed), failed


def test_tasks_their_versions_and_triggers(stack, console):
    task = f"{unique_name('t')}.nightly"
    for version in ("v1", "v2"):
        post(
            stack.endpoint,
            "/flyteidl2.task.TaskService/DeployTask",
            ts.DeployTaskRequest(
                task_id=td.TaskIdentifier(project=PROJECT, domain=DOMAIN, name=task, version=version),
                spec=task_spec(name=task),
            ),
        )
    trigger = f"{task.split('.')[0]}-every-night"
    name = TriggerName(project=PROJECT, domain=DOMAIN, name=trigger, task_name=task)
    post(
        stack.endpoint,
        "/flyteidl2.trigger.TriggerService/DeployTrigger",
        tr.DeployTriggerRequest(
            name=name,
            spec=trd.TriggerSpec(task_version="v2", active=True),
            automation_spec=common_pb2.TriggerAutomationSpec(
                schedule=common_pb2.Schedule(cron=common_pb2.Cron(expression="0 2 * * *"))
            ),
        ),
    )
    console.open(f"/v2/domain/{DOMAIN}/project/{PROJECT}/tasks")
    assert "v2" in console.text(f'tr[data-task="{task}"]')
    console.click(f'tr[data-task="{task}"] a')
    console.find('tr[data-version="v1"]')
    versions = [
        row.get_attribute("data-version")
        for row in console.driver.find_elements(By.CSS_SELECTOR, "#versions-table tbody tr")
    ]
    assert versions == ["v2", "v1"]

    console.click('a[href$="/triggers"]')
    row = f'tr[data-trigger="{trigger}"]'
    assert "Active" in console.text(row) and "cron 0 2 * * *" in console.text(row)
    console.click(f'{row} button[data-toggle="{trigger}"]')
    wait_for(lambda: "Inactive" in (console.text(row) or ""), what="trigger deactivated")
    listed = post(
        stack.endpoint,
        "/flyteidl2.trigger.TriggerService/ListTriggers",
        tr.ListTriggersRequest(project_id={"name": PROJECT, "domain": DOMAIN}),
    )
    (found,) = [t for t in listed["triggers"] if t["id"]["name"]["name"] == trigger]
    assert not found.get("active", False)


def test_pages_and_assets_are_served_with_their_cache_headers(stack):
    with urllib.request.urlopen(stack.endpoint + run_page("anything")) as response:
        page = response.read().decode()
        assert response.headers["cache-control"] == "no-cache"
    script = re.search(r'src="(/console/[0-9a-f]+/js/app\.js)"', page)
    assert script is not None
    with urllib.request.urlopen(stack.endpoint + script.group(1)) as response:
        assert "immutable" in response.headers["cache-control"]
        assert response.headers["content-type"].startswith("text/javascript")
    request = urllib.request.Request(stack.endpoint + "/flyteidl2.workflow.RunService/Nope", data=b"{}", method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        urllib.request.urlopen(request)
        raise AssertionError("an unimplemented procedure answered 200")
    except urllib.error.HTTPError as error:  # the data proxy's fallback still takes every other path
        assert error.code == 501 and json.loads(error.read())["code"] == "unimplemented"
