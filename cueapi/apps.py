from django.apps import AppConfig


class CueapiConfig(AppConfig):
    name = "cueapi"
    verbose_name = "CueAPI plumbing"
