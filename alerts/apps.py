from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self):
        # Alerts sit above executions (DESIGN.md §1): they listen to its signals and add
        # their sending to the dispatcher, rather than being called from below.
        from alerts import channels, delivery, services, streaks
        from cues.services import ALERT_CHANNEL_LOOKUPS
        from executions import dispatcher, poller, signals

        signals.execution_failed.connect(services.on_execution_failed, dispatch_uid="alerts-failed")
        signals.outcome_recorded.connect(services.on_outcome_recorded, dispatch_uid="alerts-outcome")
        signals.outcome_timed_out.connect(services.on_outcome_timed_out, dispatch_uid="alerts-timeout")
        signals.executions_succeeded.connect(services.on_executions_succeeded, dispatch_uid="alerts-succeeded")
        signals.verification_rejected.connect(services.on_verification_rejected, dispatch_uid="alerts-rejected")
        signals.slots_missed.connect(services.on_slots_missed, dispatch_uid="alerts-missed")
        dispatcher.register_unit(delivery.claim_notifications)
        poller.register_unit(streaks.send_due_repeats)
        if channels.unknown_channel_ids not in ALERT_CHANNEL_LOOKUPS:
            ALERT_CHANNEL_LOOKUPS.append(channels.unknown_channel_ids)
