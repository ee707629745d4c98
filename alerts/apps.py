from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self):
        # Alerts sit above executions (DESIGN.md §1): they listen to its signals and add
        # their sending to the dispatcher, rather than being called from below.
        from alerts import delivery, services
        from executions import dispatcher, signals

        signals.execution_failed.connect(services.on_execution_failed, dispatch_uid="alerts-failed")
        signals.outcome_recorded.connect(services.on_outcome_recorded, dispatch_uid="alerts-outcome")
        signals.outcome_timed_out.connect(services.on_outcome_timed_out, dispatch_uid="alerts-timeout")
        dispatcher.register_unit(delivery.claim_notifications)
