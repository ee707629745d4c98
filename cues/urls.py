from django.urls import path

from cues import api

urlpatterns = [
    path("v1/cues", api.CueListCreateApi.as_view()),
    # Before the <cue_id> route (executions/urls.py, included after this), which would take
    # "bulk-delete" for an id.
    path("v1/cues/bulk-delete", api.CueBulkDeleteApi.as_view()),
    # v1/cues/<id> is served by executions/urls.py: a cue's detail adds its executions' stats.
]
