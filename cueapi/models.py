from django.db import models


class MetricSample(models.Model):
    """A cumulative counter (or one histogram series) written by the engine processes.

    The poller and the dispatcher run as separate processes, possibly in separate containers,
    so an in-process Prometheus registry in gunicorn would never see their events. Each engine
    process adds up its events in memory and flushes the deltas here about once a second
    (`UPDATE … SET value = value + delta`, atomic on every backend); `GET /metrics` reads them
    back in one query. See cueapi/metrics.py.
    """

    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=300, blank=True, default="")  # 'a="x",b="y"', sorted
    value = models.FloatField(default=0)

    class Meta:
        db_table = "metric_samples"
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="unique_metric_series")]

    def __str__(self):
        return f"{self.name}{{{self.labels}}} {self.value}"


class RateLimitCounter(models.Model):
    """Requests one rate-limit bucket made in one wall-clock second (cueapi/ratelimit.py).

    The limiter's window is the sum of a bucket's last 60 rows: one indexed read and one
    upsert per request, instead of reading and rewriting a pickled log of every request time
    in the shared cache. Rows older than the window are deleted by the poller's hourly cleanup.
    """

    bucket = models.CharField(max_length=100)  # "ratelimit:<key hash>" or "ratelimit:ip:<address>"
    second = models.BigIntegerField()  # int(time) of the requests counted here
    hits = models.IntegerField(default=0)
    first_at = models.FloatField()  # time of the row's first request (the window's oldest entry)

    class Meta:
        db_table = "rate_limit_counters"
        constraints = [models.UniqueConstraint(fields=["bucket", "second"], name="unique_rate_limit_second")]

    def __str__(self):
        return f"{self.bucket} @ {self.second}: {self.hits}"
