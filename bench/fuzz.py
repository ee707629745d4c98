"""`make fuzz`: schemathesis generates requests from /openapi.json against a live API (fresh
database; PostgreSQL when DATABASE_URL says so) as a registered user, and fails on any 5xx.
It is not in CI (minutes, and random by nature); run it after changing inputs or queries.

    make fuzz [FUZZ_EXAMPLES=300] [DATABASE_URL=postgres://postgres@127.0.0.1:5432/x]
"""

import os
import subprocess
import sys

import requests

from tests.live import BASE_DIR, LiveServer

ST = BASE_DIR / ".venv-fuzz" / "bin" / "st"


def main():
    examples = os.environ.get("FUZZ_EXAMPLES", "100")
    with LiveServer(api_only=True, CUEAPI_RATE_LIMIT_ENABLED="false", LOG_FORMAT="plain") as server:
        key = requests.post(server.url + "/v1/auth/register", json={"email": "fuzz@example.com"},
                            timeout=10).json()["api_key"]
        run = subprocess.run([str(ST), "run", server.url + "/openapi.json", "-H", f"Authorization: Bearer {key}",
                              "--checks", "not_a_server_error", "--max-examples", examples, "--workers", "2"])
        errors = server.output().count("Internal Server Error")
    print(f"schemathesis exit {run.returncode}; 500s in the server log: {errors}")
    sys.exit(1 if run.returncode or errors else 0)


if __name__ == "__main__":
    main()
