import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from cueapi.logs import log_event
from cueapi.notify import OUTBOX_CHANNEL
from executions import dispatcher
from executions.engine import EngineCommand
from executions.models import DispatchOutbox

logger = logging.getLogger("cueapi.engine")

STOP = object()  # tells the recorder thread to finish


class Command(EngineCommand):
    help = "Deliver outbox rows as signed webhooks on a bounded pool, with retries."
    process_name = "dispatcher"
    listen_channel = OUTBOX_CHANNEL
    min_cycle_seconds = 0.01

    def handle(self, *args, **options):
        size = settings.CUEAPI_DISPATCH_CONCURRENCY
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="deliver")
        # A seat is taken before claiming and freed when the delivery is recorded, so we never
        # claim work we can't start at once (it would sit locked while others could send it).
        self.seats = threading.BoundedSemaphore(size)
        self.delivered = 0
        # Sent deliveries wait here to be recorded together, a few statements per batch, by the
        # recorder thread while this loop claims (the pool's threads only send). With --once,
        # this loop records them itself at the end.
        self.sent = queue.SimpleQueue()
        # What runs on the pool, so a stop can say what it waits for: future -> outbox row id
        # (None for another unit's task, e.g. an alert notification).
        self.in_flight = {}
        self.in_flight_lock = threading.Lock()
        self.recorder = None
        if not options.get("once"):
            self.recorder = threading.Thread(target=self.record_forever, name="record", daemon=True)
            self.recorder.start()
        super().handle(*args, **options)

    def cycle(self):
        claimed = 0
        while not self.stopping:
            free = self.take_free_seats()
            if not free:
                break
            try:
                ids, token = dispatcher.claim_outbox_rows(now=timezone.now(), limit=free)
                deliveries = dispatcher.load_deliveries(ids, token) if ids else []
                for delivery in deliveries:
                    self.submit(partial(dispatcher.send_delivery, delivery), outbox_row=delivery.row_id,
                                done=self.delivery_sent)
                    free -= 1
                claimed += len(ids)
                for claim in dispatcher.EXTRA_UNITS:
                    if not free:
                        break
                    for task in claim(now=timezone.now(), limit=free):
                        self.submit(partial(self.run_task, task), done=self.task_done)
                        free -= 1
                        claimed += 1
            finally:
                # Seats not used, also when a claim failed (the database is away): a lost seat
                # would never come back.
                for _ in range(free):
                    self.seats.release()
            if free:
                break
        if self.once:
            self.executor.shutdown(wait=True)  # --once: finish what was claimed
            self.record_sent()
        return {"delivered": self.delivered, "claimed_last_cycle": claimed}

    def record_forever(self):
        """The recorder thread: record whatever was sent, as it comes, until told to stop."""
        while True:
            started = time.monotonic()
            items = self.take_sent(block=True)
            batch = [item for item in items if item is not STOP]
            if not connection.in_atomic_block:
                close_old_connections()
            try:
                self.record(batch)
            except Exception:  # the database is away: those rows' leases lapse, they are sent again
                logger.exception("record_failed", extra={"fields": {"process": self.process_name}})
            self.wakeup.set()  # seats are free: look for more work
            if len(batch) < len(items):
                return
            # Like the loop's passes: while answers keep coming, let them gather into batches.
            time.sleep(max(0.0, self.min_cycle_seconds - (time.monotonic() - started)))

    def record_sent(self):
        """Record, in this thread, everything sent so far (--once, and after a stop)."""
        return self.record(self.take_sent(block=False))

    def take_sent(self, block):
        items = [self.sent.get()] if block else []
        while True:
            try:
                items.append(self.sent.get_nowait())
            except queue.Empty:
                return items

    def record(self, batch):
        """Record a batch of sent deliveries and free their seats; return how many."""
        if not batch:
            return 0
        try:
            dispatcher.record_deliveries(batch, now=timezone.now())
        finally:
            # Even when recording failed (the database is away): the rows' leases lapse and
            # they are sent again, so holding their seats would only slow everything down.
            for _ in batch:
                self.seats.release()
        self.delivered += len(batch)
        return len(batch)

    def submit(self, work, done, outbox_row=None):
        future = self.executor.submit(work)
        with self.in_flight_lock:
            self.in_flight[future] = outbox_row
        future.add_done_callback(done)

    def take_free_seats(self):
        free = 0
        while self.seats.acquire(blocking=False):
            free += 1
        return free

    def run_task(self, task):
        """Another unit's task (an alert notification) on a pool thread. Its database
        connection is closed when it ends: the pool has hundreds of threads, and each one
        keeping a connection could exhaust PostgreSQL's (alerts are rare; reconnecting is cheap)."""
        if connection.in_atomic_block:  # inside a test's transaction: keep it
            task()
            return
        try:
            task()
        finally:
            connection.close()

    def delivery_sent(self, future):
        """A send ended (send_delivery never raises): queue it for recording, wake the loop."""
        with self.in_flight_lock:
            self.in_flight.pop(future, None)
        try:
            self.sent.put(future.result())
        except Exception:  # a bug: the row's lease lapses and it is sent again
            logger.error("delivery_crashed", exc_info=True)
            self.seats.release()
        self.wakeup.set()

    def task_done(self, future):
        with self.in_flight_lock:
            self.in_flight.pop(future, None)
        self.seats.release()
        self.wakeup.set()  # a seat is free: look for more work
        if future.exception() is not None:
            logger.error("task_crashed", exc_info=future.exception())

    def sleep_seconds(self):
        due = dispatcher.next_available(now=timezone.now())
        return self.sleep_until(due)

    def shutdown(self):
        with self.in_flight_lock:
            waiting = [row for future, row in self.in_flight.items() if not future.done()]
        if waiting:
            # Stopping can take up to a delivery's deadline: say so, and for which executions,
            # so a slow stop is not mistaken for a hang (nor killed, which would send them again).
            rows = [row for row in waiting if row is not None]
            execution_ids = DispatchOutbox.objects.filter(id__in=rows).values_list("execution_id", flat=True)
            log_event(logger, "waiting_for_deliveries", process=self.process_name, webhooks=len(rows),
                      other_tasks=len(waiting) - len(rows), execution_ids=",".join(map(str, execution_ids)),
                      at_most_seconds=settings.CUEAPI_WEBHOOK_TIMEOUT_SECONDS)
        self.executor.shutdown(wait=True)
        # What was sent is recorded, not sent again after a restart.
        if self.recorder is not None:
            self.sent.put(STOP)
            self.recorder.join()
        self.record_sent()
