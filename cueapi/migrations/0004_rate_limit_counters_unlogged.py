"""The rate limiter's counters as an UNLOGGED table on PostgreSQL.

Every API request writes a counter row; in an ordinary table each of those commits waits for
its WAL record to reach the disk (about 1 ms here), so even a GET paid for a disk flush. An
unlogged table writes no WAL: its rows are lost in a crash (PostgreSQL empties it on
recovery) and it is not copied to replicas, which costs nothing but a fresh one-minute window.
SQLite has no such thing and keeps its table as it is.
"""

from django.db import migrations


def set_logged(logged):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE rate_limit_counters SET {'LOGGED' if logged else 'UNLOGGED'}")
    return run


class Migration(migrations.Migration):

    dependencies = [
        ('cueapi', '0003_rate_limit_counters'),
    ]

    operations = [
        migrations.RunPython(set_logged(False), set_logged(True)),
    ]
