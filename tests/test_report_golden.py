"""Golden images of canonical connections, compared with matplotlib's image comparison.

After an intended change of design: ``python tests/regen_baselines.py``, look at the
new tests/baseline/*.png, and commit them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from matplotlib.testing.compare import compare_images  # noqa: E402

from regen_baselines import BASELINE, GOLDEN, render  # noqa: E402

TOLERANCE = 3.0  # RMS over 0..255: anti-aliasing and font hinting differences only


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_matches_baseline(name: str, tmp_path: Path) -> None:
    expected = BASELINE / name
    assert expected.exists(), f"{expected} missing: run python tests/regen_baselines.py"
    actual = tmp_path / name
    render(GOLDEN[name](), actual)
    diff = compare_images(str(expected), str(actual), tol=TOLERANCE)
    assert diff is None, f"{diff}\nif the change is intended: python tests/regen_baselines.py"
