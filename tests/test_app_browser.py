"""app.py in a real browser. The app runs in a subprocess on a free loopback port, from a folder laid out as the
README's Space (app.py, recipes/plots.py, models/<demo folders>, APP_MODELS_DIR=models), in a Python where
hf_models cannot be imported (so it works through pipeline(..., trust_remote_code=True) alone), on tiny models built
by a fixture. Playwright drives Debian's chromium through the three tabs, the good inputs and the bad ones, and
screenshots each tab.

Needs /usr/bin/chromium (Debian's ``chromium`` package; ``make test`` installs it when run as root). Without it, or if
it does not start, these tests FAIL and say why: they never skip.
"""

import gzip
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
from app_testing import free_port, save_tiny_app_models

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_single_thread_module")]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
MNIST_IMAGES = ROOT.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
EXAMPLE_HEADLINE = "央行宣布下调存款准备金率0.5个百分点"  # the first of app.EXAMPLE_HEADLINES
STARTUP_SECONDS = 240  # the app loads six models; on this shared 2-core machine that has taken over 40 s
ANSWER_MS = 60_000  # a click's answer; generous for a busy CI machine
# app.py in a process where `import hf_models` fails: the model folders must bring their own code
LAUNCH = "import runpy, sys; sys.modules['hf_models'] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_transformer_translator, tiny_translation_tokenizer):
    """The app serving tiny models from a Space-shaped folder."""
    space = tmp_path_factory.mktemp("space")
    shutil.copy(ROOT / "app.py", space)
    (space / "recipes").mkdir()
    shutil.copy(ROOT / "recipes" / "plots.py", space / "recipes")
    headlines = [EXAMPLE_HEADLINE, "湖人加时险胜凯尔特人", "北京四环内新盘均价突破每平米4万元", "教育部：高考报名人数再创新高"]
    save_tiny_app_models(space / "models", tiny_transformer_translator, tiny_translation_tokenizer, headlines)
    port = free_port()
    log_path = space / "app.log"
    env = {
        **os.environ, "APP_MODELS_DIR": "models", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-c", LAUNCH, "app.py", "--port", str(port)]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=space, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with code {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer on {url} within {STARTUP_SECONDS} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log = log_path.read_text()
    assert "Traceback" not in log, f"the app logged an error:\n{log[-4000:]}"


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright; a missing or failing browser fails the test with the reason."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.fail(f"playwright is not installed ({error}): pip install -e '.[app]' (make test does)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (`apt-get install -y chromium`; make test does as root)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        except Exception as error:
            pytest.fail(f"chromium ({CHROMIUM}) did not start under Playwright: {error}")
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh page on the app; the test fails if the page raises a JavaScript error."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(ANSWER_MS)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(app_url, wait_until="networkidle")
    page.get_by_role("tab", name="Translate").wait_for()
    yield page
    page.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def expect():
    """Playwright's ``expect``, waiting up to ``ANSWER_MS`` (imported late: a missing playwright fails in ``browser``)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=ANSWER_MS)
    return expect


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def assert_no_error_shown(page) -> None:
    """Gradio 6 shows an unhandled exception as a bare "Error" in the output's status tracker (and, with
    ``show_error``, a toast); the app must never let one through."""
    shown = page.locator("[data-testid=status-tracker] .error, .toast-body")
    assert shown.count() == 0, shown.all_inner_texts()


def translate(page, text: str) -> None:
    page.get_by_label("English").fill(text)
    page.get_by_role("button", name="Translate", exact=True).click()


def wait_done(page) -> None:
    """Waits until no component shows Gradio's progress tracker (the event has finished)."""
    page.wait_for_function("() => document.querySelectorAll('.progress-text, .eta-bar').length === 0")


# ------------------------------------------------------------------------------------------------ translation


def test_translate_tab(page, tmp_path):
    translate(page, "i like tea")
    translation = page.locator("#translation textarea")
    expect()(translation).not_to_have_value("")
    assert translation.input_value().replace(" ", "") == "我喜欢茶"  # the tiny Transformer learnt this pair
    expect()(page.locator("#heatmap img")).to_be_visible()
    page.screenshot(path=tmp_path / "translate.png", full_page=True)

    page.get_by_label("GRU").check()
    page.get_by_role("spinbutton", name="number input for Beam size").fill("1")
    page.keyboard.press("Tab")
    translate(page, "we drink water")
    wait_done(page)
    expect()(page.locator("#heatmap img")).to_be_visible()
    assert_no_error_shown(page)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Type an English sentence"),
        ("   ", "Type an English sentence"),
        ("tea " * 2500, "tokens long; the model reads only its first"),  # 10,000 characters
        ("😀🍵🚂", "knows none of these words"),
    ],
    ids=["empty", "blank", "10000-characters", "emoji"],
)
def test_translate_bad_input(page, text, message):
    translate(page, text)
    expect()(page.locator("#translate-message")).to_contain_text(message)
    assert_no_error_shown(page)


# ------------------------------------------------------------------------------------------------ headlines


def test_classify_tab(page, tmp_path):
    open_tab(page, "Classify a headline")
    page.get_by_text(EXAMPLE_HEADLINE, exact=True).click()
    bars = page.locator("#classes .confidence-set")
    expect()(bars).to_have_count(10)
    expect()(page.get_by_label("Chinese headline")).to_have_value(EXAMPLE_HEADLINE)
    names = bars.locator("dt").all_inner_texts()
    assert "财经 finance" in names and "娱乐 entertainment" in names, names
    page.screenshot(path=tmp_path / "classify.png", full_page=True)


@pytest.mark.parametrize(
    ("text", "bars", "message"),
    [
        ("", 0, "Type a Chinese headline"),
        ("长" * 10_000, 10, "tokens long; the model reads only its first"),
        ("😀🎉", 10, ""),
    ],
    ids=["empty", "10000-characters", "emoji"],
)
def test_classify_bad_input(page, text, bars, message):
    open_tab(page, "Classify a headline")
    page.get_by_label("Chinese headline").fill(text)
    page.get_by_role("button", name="Classify", exact=True).click()
    if message:
        expect()(page.locator("#classify-message")).to_contain_text(message)
    expect()(page.locator("#classes .confidence-set")).to_have_count(bars)
    wait_done(page)
    assert_no_error_shown(page)


# ------------------------------------------------------------------------------------------------ digits


def mnist_digit(index: int = 0) -> PIL.Image.Image:
    """One 28x28 test digit from the shipped MNIST file (IDX: 16-byte header, then 784 bytes per image)."""
    with gzip.open(MNIST_IMAGES) as images:
        data = images.read()
    return PIL.Image.fromarray(np.frombuffer(data, np.uint8, 784, 16 + 784 * index).reshape(28, 28), mode="L")


def upload(page, path: Path) -> None:
    page.locator("#digit-upload input[type=file]").set_input_files(str(path))


def assert_three_predictions(page) -> None:
    for reader in ("vit", "gfnet", "afno"):
        expect()(page.locator(f"#digit-{reader} .confidence-set")).to_have_count(3)
        assert page.locator(f"#digit-{reader} [data-testid=label-output-value]").inner_text().strip() in "0123456789"
    expect()(page.locator("#rollout img")).to_be_visible()
    message = page.locator("#digit-message").inner_text().strip()
    assert message == "", f"predictions came with a message: {message}"


def test_read_digit_tab(page, tmp_path):
    open_tab(page, "Read a digit")
    mnist_digit().save(tmp_path / "digit.png")
    upload(page, tmp_path / "digit.png")
    assert_three_predictions(page)
    page.screenshot(path=tmp_path / "digits.png", full_page=True)


def test_read_drawn_digit(page):
    """Strokes drawn with the mouse on the sketchpad reach the three models."""
    open_tab(page, "Read a digit")
    canvas = page.locator("#sketch canvas").first
    page.locator("#sketch").get_by_role("button", name="Brush").click()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.8, steps=12)
    page.mouse.up()
    page.get_by_role("button", name="Read the sketch").click()
    assert_three_predictions(page)
    assert_no_error_shown(page)


def test_read_empty_sketch(page):
    open_tab(page, "Read a digit")
    page.get_by_role("button", name="Read the sketch").click()
    expect()(page.locator("#digit-message")).to_contain_text("draw a digit")
    assert_no_error_shown(page)


def odd_uploads(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files a user might upload -> (file, what the page must then show: "predictions" or a message)."""
    digit = mnist_digit(1)
    page_like = PIL.Image.fromarray(255 - np.asarray(digit))  # dark ink on a light page
    cases = {
        "huge.png": (PIL.Image.new("L", (8000, 8000), 0), "too large"),  # 64 million pixels
        "big-photo.jpg": (page_like.convert("RGB").resize((3000, 2000)), "predictions"),
        "sixteen-bit.png": (PIL.Image.fromarray(np.asarray(digit).astype(np.uint16) * 257), "predictions"),
        "cmyk.jpg": (digit.convert("CMYK"), "predictions"),
        "palette.gif": (digit.convert("P"), "predictions"),
        "transparent.png": (PIL.Image.merge("LA", [PIL.Image.new("L", (28, 28), 0), digit]), "predictions"),
        "one-bit.png": (digit.point(lambda value: 255 if value > 127 else 0).convert("1"), "predictions"),
        "one-pixel.png": (PIL.Image.new("L", (1, 1), 0), "blank"),
    }
    files = {}
    for name, (image, expected) in cases.items():
        image.save(folder / name)
        files[name] = (folder / name, expected)
    (folder / "not-an-image.png").write_text("hello")
    files["not-an-image.png"] = (folder / "not-an-image.png", "not an image")
    return files


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory):
    return odd_uploads(tmp_path_factory.mktemp("uploads"))


@pytest.mark.parametrize(
    "name",
    ["huge.png", "big-photo.jpg", "sixteen-bit.png", "cmyk.jpg", "palette.gif", "transparent.png", "one-bit.png",
     "one-pixel.png", "not-an-image.png"],
)
def test_read_odd_upload(page, odd_files, name):
    path, expected = odd_files[name]
    assert path.is_file()
    open_tab(page, "Read a digit")
    upload(page, path)
    if expected == "predictions":
        assert_three_predictions(page)
    else:
        expect()(page.locator("#digit-message")).to_contain_text(expected)
    assert_no_error_shown(page)
