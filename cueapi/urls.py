from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

# Apps are included by name, not imported: the project's plumbing depends on no app.
# Django tries the patterns in order, so the routes workers and clients call most come first.
# cues before executions: executions/urls.py serves v1/cues/<id>, which would take
# v1/cues/bulk-delete. No other paths overlap.
urlpatterns = [
    path("", include("cues.urls")),
    path("", include("executions.urls")),
    path("", include("ops.urls")),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    # Swagger UI and ReDoc from this server's static files (drf-spectacular-sidecar), started by
    # a script file (the split view's /docs?script), never inline: they work offline and under
    # the same Content-Security-Policy as every other page.
    # GET only: the view's OPTIONS tried to render a page without a template (a 500).
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="openapi", http_method_names=["get", "head"])),
    path("redoc", SpectacularRedocView.as_view(url_name="openapi", template_name="cueapi/redoc.html")),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("alerts.urls")),
]

handler400 = "cueapi.errors.handler400"
handler403 = "cueapi.errors.handler403"
handler404 = "cueapi.errors.handler404"
handler500 = "cueapi.errors.handler500"
