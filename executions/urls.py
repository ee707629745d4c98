from django.urls import path

from executions import api

urlpatterns = [
    path("v1/cues/<str:cue_id>", api.CueDetailApi.as_view()),
    path("v1/cues/<str:cue_id>/fire", api.CueFireApi.as_view()),
    path("v1/cues/<str:cue_id>/backfill", api.CueBackfillApi.as_view()),
    path("v1/executions", api.ExecutionListApi.as_view()),
    # Literal paths before the <execution_id> ones.
    path("v1/executions/claimable", api.ClaimableApi.as_view()),
    path("v1/executions/claim", api.ClaimNextApi.as_view()),
    path("v1/executions/replay", api.BulkReplayApi.as_view()),
    path("v1/executions/<str:execution_id>", api.ExecutionDetailApi.as_view()),
    path("v1/executions/<str:execution_id>/outcome", api.OutcomeApi.as_view()),
    path("v1/executions/<str:execution_id>/claim", api.ClaimApi.as_view()),
    path("v1/executions/<str:execution_id>/heartbeat", api.HeartbeatApi.as_view()),
    path("v1/executions/<str:execution_id>/attempts", api.AttemptListApi.as_view()),
    path("v1/executions/<str:execution_id>/replay", api.ReplayApi.as_view()),
    path("v1/executions/<str:execution_id>/verify", api.VerifyApi.as_view()),
    path("v1/executions/<str:execution_id>/verification-pending", api.VerificationPendingApi.as_view()),
    path("v1/executions/<str:execution_id>/evidence", api.EvidenceApi.as_view()),
    path("v1/worker/heartbeat", api.WorkerHeartbeatApi.as_view()),
    path("v1/workers", api.WorkerListApi.as_view()),
    path("v1/workers/<str:worker_id>", api.WorkerDeleteApi.as_view()),
]
