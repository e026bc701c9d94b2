"""Suite-wide settings.

Hypothesis runs derandomized by default, so that the suite CI gates landing on gives
the same verdict every time. ``HYPOTHESIS_PROFILE=explore pytest`` searches with fresh
random examples (and more of them); add what it finds as an ``@example``.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
