from django.urls import path

from cues import api

urlpatterns = [
    path("v1/cues", api.CueListCreateApi.as_view()),
    # Before the <cue_id> route, which would take "bulk-delete" for an id.
    path("v1/cues/bulk-delete", api.CueBulkDeleteApi.as_view()),
    path("v1/cues/<str:cue_id>", api.CueDetailApi.as_view()),
]
