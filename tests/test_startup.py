"""What a server process loads at start: the rater loop's workers start light.

scipy, choix and krippendorff serve the quality figures and the leaderboard only; imported at
start they doubled the modules and the objects the garbage collector walks (docs/BENCHMARKS.md,
"The rater loop's cost per annotation, two servers side by side"). They are imported where used.
"""

import json
import subprocess
import sys

HEAVY = ("scipy", "choix", "krippendorff", "sklearn")

PROBE = f"""
import gc, json, sys
import server.app
loaded = [name for name in {HEAVY!r} if name in sys.modules]
server.app.freeze_startup_objects()
first = gc.get_freeze_count()
server.app.freeze_startup_objects()
from server.security import password_hash
cost = password_hash.hash("a password").split("$")[3]
print(json.dumps({{"loaded": loaded, "frozen": first, "again": gc.get_freeze_count(), "cost": cost}}))
"""


def test_the_app_imports_no_statistics_library_and_freezes_its_start_up_objects_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={"ASSAY_ENVIRONMENT": "test", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["loaded"] == [], f"imported at start: {probe['loaded']}"
    assert probe["frozen"] > 10_000  # modules, routes, mappers: what start-up built
    assert probe["again"] == probe["frozen"]  # once per process: later objects are collected as usual
    # The product hashes passwords at Argon2's recommended cost (tests/conftest.py lowers it in the
    # test process only).
    assert probe["cost"] == "m=65536,t=3,p=4"
