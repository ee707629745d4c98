from executions.engine import EngineCommand


class Command(EngineCommand):
    help = "Deliver outbox rows as signed webhooks, with retries."
    process_name = "dispatcher"

    def cycle(self):
        # Webhook delivery arrives with the engine (issue #5).
        return {"delivered": 0}
