"""Wake-up triggers (PostgreSQL): the database itself sends the NOTIFY that wakes an engine
loop (cueapi/notify.py listens), so no code path that writes work can forget to. Migrations
install them with `install()`; on SQLite there is nothing to install (the loops poll).

* a row inserted into a queue table (`dispatch_outbox`, `notifications`) wakes the dispatchers;
* a cue that becomes due sooner (created with a next_run, resumed, rescheduled earlier) wakes
  the pollers. The poller's own advance moves next_run later and wakes nobody;
* a timed pause that ends sooner (a paused_until set or moved earlier) wakes the pollers, which
  resume the cue at that instant.
NOTIFY is sent at commit, and identical ones within a transaction are sent once.
"""

from cueapi.notify import CUES_CHANNEL, OUTBOX_CHANNEL


def notify_function(channel):
    """SQL creating the trigger function `notify_<channel>()` that NOTIFYs `channel`."""
    return f"""
CREATE OR REPLACE FUNCTION notify_{channel}() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{channel}', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""


def queue_trigger(table):
    """(install SQL, remove SQL): any INSERT into the queue `table` wakes the dispatchers."""
    name = f"{table}_wakes_dispatchers"
    install = notify_function(OUTBOX_CHANNEL) + (
        f"CREATE TRIGGER {name} AFTER INSERT ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION notify_{OUTBOX_CHANNEL}();")
    return install, f"DROP TRIGGER IF EXISTS {name} ON {table};"


def due_sooner_trigger():
    """(install SQL, remove SQL): a cue that becomes due sooner wakes the pollers. Row triggers
    with WHEN clauses: only the rows that matter call the function."""
    install = notify_function(CUES_CHANNEL) + f"""
CREATE TRIGGER cues_wake_pollers_insert AFTER INSERT ON cues
    FOR EACH ROW WHEN (NEW.next_run IS NOT NULL) EXECUTE FUNCTION notify_{CUES_CHANNEL}();
CREATE TRIGGER cues_wake_pollers_sooner AFTER UPDATE OF next_run ON cues
    FOR EACH ROW WHEN (NEW.next_run IS NOT NULL AND (OLD.next_run IS NULL OR NEW.next_run < OLD.next_run))
    EXECUTE FUNCTION notify_{CUES_CHANNEL}();
"""
    remove = ("DROP TRIGGER IF EXISTS cues_wake_pollers_insert ON cues; "
              "DROP TRIGGER IF EXISTS cues_wake_pollers_sooner ON cues;")
    return install, remove


def timed_pause_trigger():
    """(install SQL, remove SQL): a paused_until set or moved earlier wakes the pollers, so
    one sleeping until a later next_run wakes in time to resume the cue."""
    install = notify_function(CUES_CHANNEL) + f"""
CREATE TRIGGER cues_wake_pollers_pause_insert AFTER INSERT ON cues
    FOR EACH ROW WHEN (NEW.paused_until IS NOT NULL) EXECUTE FUNCTION notify_{CUES_CHANNEL}();
CREATE TRIGGER cues_wake_pollers_pause_sooner AFTER UPDATE OF paused_until ON cues
    FOR EACH ROW WHEN (NEW.paused_until IS NOT NULL
                       AND (OLD.paused_until IS NULL OR NEW.paused_until < OLD.paused_until))
    EXECUTE FUNCTION notify_{CUES_CHANNEL}();
"""
    remove = ("DROP TRIGGER IF EXISTS cues_wake_pollers_pause_insert ON cues; "
              "DROP TRIGGER IF EXISTS cues_wake_pollers_pause_sooner ON cues;")
    return install, remove


def run_on_postgresql(sql):
    """A RunPython step that runs `sql` on PostgreSQL and does nothing elsewhere."""
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)
    return run
