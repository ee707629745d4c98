from django.db import migrations

from cueapi.wakeups import queue_trigger, run_on_postgresql

INSTALL, REMOVE = queue_trigger("dispatch_outbox")


class Migration(migrations.Migration):
    dependencies = [("executions", "0006_outcome_state_choices")]

    operations = [migrations.RunPython(run_on_postgresql(INSTALL), run_on_postgresql(REMOVE))]
