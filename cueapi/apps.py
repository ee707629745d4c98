from django.apps import AppConfig


class CueapiConfig(AppConfig):
    name = "cueapi"
    verbose_name = "CueAPI plumbing"

    def ready(self):
        from cueapi import schema  # noqa: F401 - registers the OpenAPI auth extension
