from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularRedocView, SpectacularSwaggerView

from cueapi import health, metrics

urlpatterns = [
    path("health", health.HealthApi.as_view()),
    path("status", health.StatusApi.as_view()),
    path("metrics", metrics.metrics_view),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi")),
    path("redoc", SpectacularRedocView.as_view(url_name="openapi")),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("cues.urls")),
    path("", include("executions.urls")),
    path("", include("alerts.urls")),
]

handler400 = "cueapi.errors.handler400"
handler403 = "cueapi.errors.handler403"
handler404 = "cueapi.errors.handler404"
handler500 = "cueapi.errors.handler500"
