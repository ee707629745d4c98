from django.urls import path

from executions import api

urlpatterns = [
    path("v1/cues/<str:cue_id>/fire", api.CueFireApi.as_view()),
]
