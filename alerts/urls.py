from django.urls import path

from alerts import api

urlpatterns = [
    path("v1/alerts", api.AlertListApi.as_view()),
    path("v1/alert-channels", api.AlertChannelListCreateApi.as_view()),
    path("v1/alert-channels/<str:channel_id>", api.AlertChannelDetailApi.as_view()),
    path("v1/alert-channels/<str:channel_id>/test", api.AlertChannelTestApi.as_view()),
]
