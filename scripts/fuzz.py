"""`make fuzz`: schemathesis' `st run --checks all` against a mock this script starts and stops.

Extra arguments go to `st run` (e.g. `--max-examples 5000`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk_test_enterprise_0123456789abcdef"


def main(argv: list[str]) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        st = Path(sys.executable).with_name("st")
        command = [str(st), "run", "openapi.yaml", "--url", f"http://127.0.0.1:{port}"]
        env = {**os.environ, "IMAGEAPI_KEY_ENTERPRISE": KEY}
        return subprocess.call([*command, "--checks", "all", *argv], cwd=ROOT, env=env)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
