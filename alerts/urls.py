from django.urls import path

from alerts import api

urlpatterns = [path("v1/alerts", api.AlertListApi.as_view())]
