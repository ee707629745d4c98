from executions.engine import EngineCommand


class Command(EngineCommand):
    help = "Fire due cues, move due retries back to be sent, recover stale work."
    process_name = "poller"

    def cycle(self):
        # Firing due cues arrives with the engine (issue #5); the loop, signals and heartbeat
        # (seen by /health) are in place.
        return {"cues_processed": 0}
