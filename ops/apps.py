from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class OpsConfig(AppConfig):
    """What an operator looks at across every app: the admin overview, /health, /metrics.
    It sits above the other apps (README, "Code layout"), so it imports their models freely."""

    name = "ops"
    verbose_name = "CueAPI operations"


class CueAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site: the overview on the home page."""

    default = False  # named in INSTALLED_APPS; OpsConfig stays this module's default

    default_site = "ops.admin_site.CueAdminSite"
