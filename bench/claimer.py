"""One worker process claiming as fast as it can: `python bench/claimer.py URL KEY MODE NAME [report]`.

MODE `next` calls POST /v1/executions/claim until it answers 409; MODE `by-id` lists
/v1/executions/claimable and claims each listed execution by id (409 = someone else won) until
nothing is listed. With `report`, each claimed execution then gets its outcome posted, as a
real worker does after running the task. Prints the claimed execution ids, one per line, and
`attempts N` to stderr. Used by the double-claim test and by `python -m bench claims`.
"""

import sys

import requests


def main():
    url, key, mode, name = sys.argv[1:5]
    report = sys.argv[5:6] == ["report"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    claimed, attempts = [], 0

    def report_outcome(execution_id):
        if report:
            response = session.post(f"{url}/v1/executions/{execution_id}/outcome",
                                    json={"success": True, "result": "done"}, timeout=30)
            response.raise_for_status()
    if mode == "next":
        while True:
            response = session.post(f"{url}/v1/executions/claim", json={"worker_id": name}, timeout=30)
            attempts += 1
            if response.status_code == 409:
                break
            response.raise_for_status()
            claimed.append(response.json()["execution_id"])
            report_outcome(claimed[-1])
    else:
        while True:
            listed = session.get(f"{url}/v1/executions/claimable", timeout=30).json()["executions"]
            if not listed:
                break
            for item in listed:
                response = session.post(f"{url}/v1/executions/{item['execution_id']}/claim",
                                        json={"worker_id": name}, timeout=30)
                attempts += 1
                if response.status_code == 200:
                    claimed.append(item["execution_id"])
                    report_outcome(item["execution_id"])
                elif response.status_code != 409:
                    response.raise_for_status()
    print("\n".join(claimed))
    print(f"attempts {attempts}", file=sys.stderr)


if __name__ == "__main__":
    main()
