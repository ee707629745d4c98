from django.core.management.base import BaseCommand
from django.utils import timezone

from cueapi import metrics
from executions import retention


class Command(BaseCommand):
    help = ("Delete finished executions older than the retention period (CUEAPI_EXECUTION_RETENTION_DAYS, "
            "or the user's own), in batches, with their attempts and outbox rows. The poller does this "
            "hourly; this runs it now.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
        parser.add_argument("--batch", type=int, default=retention.PRUNE_BATCH_SIZE, help="rows per transaction")

    def handle(self, *args, dry_run=False, batch=retention.PRUNE_BATCH_SIZE, **options):
        if batch < 1:
            self.stderr.write("--batch must be at least 1")
            raise SystemExit(2)
        now = timezone.now()
        if dry_run:
            self.stdout.write(f"{retention.prunable(now=now).count()} executions would be pruned (dry run).")
            return
        total = 0
        while True:
            done = retention.prune_executions(now=now, batch=batch)
            total += done
            if done < batch:
                break
        metrics.flush(force=True)
        self.stdout.write(f"{total} executions pruned.")
