from django.db import migrations

from cueapi.wakeups import due_sooner_trigger, run_on_postgresql

INSTALL, REMOVE = due_sooner_trigger()


class Migration(migrations.Migration):
    dependencies = [("cues", "0002_cue_pause_note")]

    operations = [migrations.RunPython(run_on_postgresql(INSTALL), run_on_postgresql(REMOVE))]
