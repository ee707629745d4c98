from django.urls import path

from cues import api

urlpatterns = [
    path("v1/cues", api.CueListCreateApi.as_view()),
    path("v1/cues/<str:cue_id>", api.CueDetailApi.as_view()),
]
