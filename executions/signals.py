"""Events the alerts app listens to (it sits above executions: DESIGN.md §1, so it can't be
called from here). Sent inside the transaction that changed the state, so what the receivers
write (alerts, notifications) commits or rolls back with it.

* `execution_failed(execution, cue, now, reason, endpoint_gone)`: an execution ended badly —
  delivery failed for good, a worker's lease ran out for the last time, nobody claimed it, the
  handler reported `success: false`, or no outcome came by the deadline. `endpoint_gone`: its
  webhook answered 410 Gone and this failure paused the cue.
* `outcome_recorded(execution_id, cue, state, now)`: an outcome was recorded.
* `outcome_timed_out(execution, cue, now)`: an execution passed its outcome deadline.
"""

from django.dispatch import Signal

execution_failed = Signal()
outcome_recorded = Signal()
outcome_timed_out = Signal()
