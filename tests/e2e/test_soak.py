"""The soak of scripts/soak.py in its short form (15 s): 16 clients mixing valid and bad
requests with cancelled streams, 600 half-open connections from one client and 20 slowloris
clients; every valid answer right, every bad request a 4xx, no 5xx, /health within 1 s
throughout, RSS flat under load. `python3 scripts/soak.py --seconds 120` is the long form."""
import os
import subprocess
import sys

from conftest import ROOT


def test_soak_short(vlm_env):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "soak.py"), "--bin", vlm_env[0],
                        "--model", vlm_env[1], "--seconds", "15"], capture_output=True, text=True, timeout=300)
    print(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
