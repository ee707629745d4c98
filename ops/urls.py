from django.urls import path

from ops import health, metrics

urlpatterns = [
    path("health", health.HealthApi.as_view()),
    path("status", health.StatusApi.as_view()),
    path("metrics", metrics.metrics_view),
]
