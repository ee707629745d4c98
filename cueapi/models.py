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
