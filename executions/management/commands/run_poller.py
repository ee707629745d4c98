from django.utils import timezone

from accounts.device import delete_expired_device_codes
from cueapi.notify import CUES_CHANNEL
from cueapi.ratelimit import delete_old_counters
from executions import poller, retention
from executions.engine import EngineCommand
from executions.firing import delete_expired_idempotency_keys

CLEANUP_EVERY_SECONDS = 3600


class Command(EngineCommand):
    help = ("Resume cues whose timed pause ended, fire due cues, expire worker leases, release due "
            "retries, mark unclaimed worker executions missed, time out missing outcomes, clean up "
            "old outbox rows, login codes, rate-limit counters and expired fire idempotency keys, "
            "and prune old executions.")
    # Set at start and hourly; while set, each cycle prunes one batch after its other work and
    # the next cycle starts at once, so a long prune runs between firings, never in their way.
    pruning = True
    process_name = "poller"
    listen_channel = CUES_CHANNEL

    def drain(self, unit) -> int:
        """Run `unit` batch after batch while a full batch says there may be more right behind
        it. Each batch reads the clock afresh (a long drain must not judge lateness by the
        cycle's start), and a stop request is honoured between batches, which are short."""
        total = 0
        while not self.stopping:
            done = unit(now=timezone.now())
            total += done
            if done < poller.BATCH_SIZE:
                break
        return total

    def cycle(self):
        # Timed pauses first, so a cue whose pause ended and that is due at once fires this cycle.
        other = self.drain(poller.resume_timed_pauses)
        fired = self.drain(poller.fire_due_cues)
        for unit in (poller.expire_worker_leases, poller.release_due_retries,
                     poller.miss_unclaimed_worker_executions, poller.time_out_missing_outcomes,
                     poller.release_buffered_slots, *poller.EXTRA_UNITS):
            other += self.drain(unit)
        now = timezone.now()
        if now.timestamp() - getattr(self, "last_cleanup", 0) > CLEANUP_EVERY_SECONDS:
            poller.delete_old_outbox_rows(now=now)
            delete_expired_device_codes(now=now)
            delete_old_counters(now=now)
            delete_expired_idempotency_keys(now=now)
            self.last_cleanup = now.timestamp()
            self.pruning = True
        if self.pruning and not self.stopping:
            batch = retention.PRUNE_BATCH_SIZE
            self.pruning = retention.prune_executions(now=timezone.now(), batch=batch) == batch
        return {"cues_processed": fired + other}

    def sleep_seconds(self):
        """Until the next cue or retry is due, at most the poll interval."""
        if self.pruning:
            return 0
        due = poller.next_due(now=timezone.now())
        return self.sleep_until(due)
