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

    def cycle(self):
        fired = other = 0
        # First, so a cue whose timed pause ended and that is due at once fires this cycle.
        while not self.stopping:
            done = poller.resume_timed_pauses(now=timezone.now())
            other += done
            if done < poller.BATCH_SIZE:
                break
        # Drain: a full batch means there may be more right behind it. Each batch reads the
        # clock afresh (a long drain must not judge lateness by the cycle's start), and a
        # stop request is honoured between batches, which are short.
        while not self.stopping:
            done = poller.fire_due_cues(now=timezone.now())
            fired += done
            if done < poller.BATCH_SIZE:
                break
        for unit in (poller.expire_worker_leases, poller.release_due_retries,
                     poller.miss_unclaimed_worker_executions, poller.time_out_missing_outcomes,
                     poller.release_buffered_slots, *poller.EXTRA_UNITS):
            while not self.stopping:
                done = unit(now=timezone.now())
                other += done
                if done < poller.BATCH_SIZE:
                    break
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
