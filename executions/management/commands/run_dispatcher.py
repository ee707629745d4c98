import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from cueapi.notify import OUTBOX_CHANNEL
from executions import dispatcher
from executions.engine import EngineCommand

logger = logging.getLogger("cueapi.engine")


class Command(EngineCommand):
    help = "Deliver outbox rows as signed webhooks on a bounded pool, with retries."
    process_name = "dispatcher"
    listen_channel = OUTBOX_CHANNEL

    def handle(self, *args, **options):
        size = settings.CUEAPI_DISPATCH_CONCURRENCY
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="deliver")
        # A seat is taken before claiming and freed when the delivery ends, so we never claim
        # work we can't start at once (it would sit locked while others could send it).
        self.seats = threading.BoundedSemaphore(size)
        self.delivered = 0
        super().handle(*args, **options)

    def cycle(self):
        claimed = 0
        while not self.stopping:
            free = self.take_free_seats()
            if not free:
                break
            ids, token = dispatcher.claim_outbox_rows(now=timezone.now(), limit=free)
            for row_id in ids:
                future = self.executor.submit(self.deliver, row_id, token)
                future.add_done_callback(self.delivery_done)
            claimed += len(ids)
            free -= len(ids)
            for claim in dispatcher.EXTRA_UNITS:
                if not free:
                    break
                tasks = claim(now=timezone.now(), limit=free)
                for task in tasks:
                    self.executor.submit(self.run_task, task).add_done_callback(self.delivery_done)
                claimed += len(tasks)
                free -= len(tasks)
            for _ in range(free):
                self.seats.release()
            if free:
                break
        if self.once:
            self.executor.shutdown(wait=True)  # --once: finish what was claimed
        return {"delivered": self.delivered, "claimed_last_cycle": claimed}

    def take_free_seats(self):
        free = 0
        while self.seats.acquire(blocking=False):
            free += 1
        return free

    def deliver(self, row_id, token):
        self.run_task(lambda: dispatcher.deliver_outbox_row(row_id, token))
        self.delivered += 1

    def run_task(self, task):
        if not connection.in_atomic_block:  # inside a test's transaction: keep it
            close_old_connections()
        try:
            task()
        finally:
            if not connection.in_atomic_block:
                close_old_connections()

    def delivery_done(self, future):
        self.seats.release()
        self.wakeup.set()  # a seat is free: look for more work
        if future.exception() is not None:
            logger.error("delivery_crashed", exc_info=future.exception())

    def sleep_seconds(self):
        due = dispatcher.next_available(now=timezone.now())
        return self.sleep_until(due)

    def shutdown(self):
        self.executor.shutdown(wait=True)
