"""Events the alerts app listens to (it sits above executions: DESIGN.md §1, so it can't be
called from here). Sent inside the transaction that changed the state, so what the receivers
write (alerts, notifications) commits or rolls back with it.

* `execution_failed(execution, cue, now, reason, endpoint_gone)`: an execution ended badly —
  delivery failed for good, a worker's lease ran out for the last time, nobody claimed it, the
  handler reported `success: false`, or no outcome came by the deadline. `endpoint_gone`: its
  webhook answered 410 Gone and this failure paused the cue.
* `outcome_recorded(execution_id, cue, state, now)`: an outcome was recorded.
* `outcome_timed_out(execution, cue, now)`: an execution passed its outcome deadline.
* `executions_succeeded(succeeded, now)`: executions reached a good verdict — a successful
  outcome, or a 2xx delivery whose cue expects no outcome. `succeeded` is a list of
  (cue_id, execution_id) (a batch of deliveries sends one).
* `verification_rejected(execution_id, cue, reason, now)`: the owner's verdict failed an
  outcome's evidence (a failure of the job, for the cue's failure streak).
* `slots_missed(cue, slots, reason, now)`: one poller pass recorded missed slots of a cue
  (`reason`: "catch_up" or "overlap"; `slots`: their scheduled times, oldest first).
"""

from django.dispatch import Signal

execution_failed = Signal()
outcome_recorded = Signal()
outcome_timed_out = Signal()
executions_succeeded = Signal()
slots_missed = Signal()
verification_rejected = Signal()
