from django.db import migrations

from cueapi.wakeups import run_on_postgresql, timed_pause_trigger

INSTALL, REMOVE = timed_pause_trigger()


class Migration(migrations.Migration):
    dependencies = [("cues", "0007_cue_paused_until")]

    operations = [migrations.RunPython(run_on_postgresql(INSTALL), run_on_postgresql(REMOVE))]
