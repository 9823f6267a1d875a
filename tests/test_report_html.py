"""The HTML report opened in headless Chromium: it renders with every section, and its embedded
plots decode and paint (their colours are found in a screenshot)."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from needs import missing

from retable.evals.audit import Audit
from retable.evals.report import render_html
from retable.evals.audit import SCHEMA_VERSION

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = ["verdict", "held-out", "faithfulness", "drift", "cost"]
PLOT_BLUE, PLOT_ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two colours


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120)


def _pixels_near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> int:
    return int((np.abs(img[:, :, :3].astype(int) - np.array(rgb)).max(axis=2) <= tol).sum())


@pytest.fixture(scope="module")
def report(finished_audit_run):
    return finished_audit_run / "report.html"


def test_report_renders_in_headless_chromium_with_sections_and_plots(report, tmp_path):
    if CHROMIUM is None:
        missing("no chromium on this machine (Debian: apt-get install chromium); .ci/run installs it")
    dom = _chromium("--dump-dom", report.as_uri()).stdout
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom, section
    assert dom.count('src="data:image/png;base64,') >= 3
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1100,6000", f"--screenshot={shot}", report.as_uri())
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert _pixels_near(img, PLOT_BLUE) > 2000 and _pixels_near(img, PLOT_ORANGE) > 500  # the bars and lines painted


def test_report_has_no_external_assets_and_escapes_synthetic_text(finished_audit_run):
    audit = Audit.model_validate_json((finished_audit_run / "audit.json").read_text())
    evil = audit.model_copy(deep=True)
    evil.faithfulness.judge.judged[0].query = '<script>alert("x")</script>'
    html = render_html(evil)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "http://" not in html and "https://" not in html
    assert json.loads((finished_audit_run / "audit.json").read_text())["schema_version"] == SCHEMA_VERSION
