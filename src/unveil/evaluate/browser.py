"""Open a report in a real headless Chromium: the page must load without console messages (our pages carry no
scripts, so any message is an error) and its screenshot must not be blank."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unveil.errors import UnveilError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@dataclass(frozen=True)
class BrowserCheck:
    """What Chromium saw: console messages, the screenshot and how much it varies (0 = one flat colour)."""

    console: list[str]
    screenshot: Path
    spread: float

    @property
    def ok(self) -> bool:
        return not self.console and self.spread > 5.0


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise UnveilError("No Chromium found (looked for chromium, chromium-browser, google-chrome); on Debian: "
                      "'apt-get install chromium'.")


def check_page(page: str | Path, screenshot: str | Path, size: tuple[int, int] = (1200, 1600),
               timeout: float = 120) -> BrowserCheck:
    """Load ``page`` in headless Chromium, save a screenshot, collect console messages."""
    import cv2

    page, screenshot = Path(page).resolve(), Path(screenshot)
    screenshot.unlink(missing_ok=True)
    command = [find_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size={size[0]},{size[1]}", f"--screenshot={screenshot.resolve()}",
               "--enable-logging=stderr", "--v=0", page.as_uri()]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise UnveilError(f"Chromium did not finish loading {page} within {timeout:.0f} s.") from None
    console = [line for line in run.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]
    image = cv2.imread(str(screenshot)) if screenshot.is_file() else None
    if image is None:
        raise UnveilError(f"Chromium wrote no screenshot of {page} (exit {run.returncode}).")
    return BrowserCheck(console, screenshot, float(np.std(image)))
