from django.urls import path

from accounts import api

urlpatterns = [
    path("v1/auth/register", api.RegisterApi.as_view()),
    path("v1/auth/me", api.MeApi.as_view()),
    path("v1/auth/key", api.KeyApi.as_view()),
    path("v1/auth/key/regenerate", api.KeyRegenerateApi.as_view()),
    path("v1/auth/webhook-secret", api.WebhookSecretApi.as_view()),
    path("v1/auth/webhook-secret/regenerate", api.WebhookSecretRegenerateApi.as_view()),
    path("v1/auth/alert-webhook-secret", api.AlertWebhookSecretApi.as_view()),
    path(
        "v1/auth/alert-webhook-secret/regenerate", api.AlertWebhookSecretRegenerateApi.as_view()
    ),
    path("v1/auth/keys", api.KeyListCreateApi.as_view()),
    path("v1/auth/keys/<str:key_id>", api.KeyDetailApi.as_view()),
    path("v1/audit", api.AuditListApi.as_view()),
    path("v1/auth/session/refresh", api.SessionRefreshApi.as_view()),
    path("v1/usage", api.UsageApi.as_view()),
    path("v1/auth/session", api.SessionApi.as_view()),
    path("v1/auth/device-code", api.DeviceCodeApi.as_view()),
    path("v1/auth/device-code/poll", api.DeviceCodePollApi.as_view()),
    path("v1/auth/device-code/submit-email", api.SubmitEmailApi.as_view()),
    path("v1/auth/verify", api.VerifyPage.as_view()),
    path("auth/device", api.DevicePage.as_view()),
    path("v1/echo/<str:token>", api.EchoApi.as_view()),
]
