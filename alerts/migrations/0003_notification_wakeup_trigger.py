from django.db import migrations

from cueapi.wakeups import queue_trigger, run_on_postgresql

INSTALL, REMOVE = queue_trigger("notifications")


class Migration(migrations.Migration):
    dependencies = [("alerts", "0002_alerts_created_index")]

    operations = [migrations.RunPython(run_on_postgresql(INSTALL), run_on_postgresql(REMOVE))]
