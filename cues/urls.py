from django.urls import path

from cues import api

urlpatterns = [
    path("v1/cues", api.CueListCreateApi.as_view()),
    # v1/cues/<id> is served by executions/urls.py: a cue's detail adds its executions' stats.
]
