from django.apps import AppConfig


class CuesConfig(AppConfig):
    name = "cues"
