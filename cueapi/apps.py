from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CueapiConfig(AppConfig):
    name = "cueapi"
    verbose_name = "CueAPI plumbing"

    def ready(self):
        from cueapi import schema  # noqa: F401 - registers the OpenAPI auth extension


class CueAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site: the overview on the home page."""

    default = False  # named in INSTALLED_APPS; CueapiConfig stays this module's default

    default_site = "cueapi.admin_site.CueAdminSite"
