"""Foundation: migrations, reference data, daemon lifecycle, reconnect."""
import subprocess

from harness import BIN, wait_for
import os

DAEMONS = ["aryz-smsd", "aryz-mqttd", "aryz-routerd", "aryz-escalated", "aryz-apid"]


def test_migrations_are_idempotent(servers, db):
    out = servers.ctl("migrate", db=db.name).stdout
    assert "0 applied" in out
    assert db.scalar("SELECT count(*) FROM schema_migration") >= 3


def test_reference_data_loaded(db):
    aa = db.scalar("SELECT count(*) FROM municipality WHERE kind = 'aiyl_aimak'")
    assert aa >= 129
    # Every municipality hangs off a rayon of an oblast.
    orphans = db.scalar("SELECT count(*) FROM municipality m LEFT JOIN rayon r "
                        "ON r.soate = m.rayon_soate WHERE r.soate IS NULL")
    assert orphans == 0
    # Names repeat across rayons: Kyzyl-Tuu is in two Jalal-Abad rayons.
    n = db.scalar("SELECT count(DISTINCT soate) FROM municipality_alias WHERE alias = 'кызыл-туу'")
    assert n >= 2
    assert db.scalar("SELECT count(*) FROM service_category") == 6
    assert db.scalar("SELECT count(*) FROM contract WHERE is_demo") >= 1


def test_load_reference_twice_changes_nothing(servers, db):
    before = db.scalar("SELECT count(*) FROM municipality_alias")
    servers.ctl("load-reference", db=db.name)
    assert db.scalar("SELECT count(*) FROM municipality_alias") == before


def test_bad_states_are_impossible(db):
    import psycopg2
    for sql in [
        "INSERT INTO complaint (channel, reporter, status) VALUES ('sms', 'x', 'routed')",
        "INSERT INTO complaint (channel, reporter, status) VALUES ('sms', 'x', 'bogus')",
        "INSERT INTO resident (phone) VALUES ('0555123456')",
        "INSERT INTO contract (municipality_soate, category_code, provider_id, sla_policy_id, valid_from)"
        " VALUES ('41703220856000', 'waste', 2, 1, '2024-06-01')",
    ]:
        try:
            db.execute(sql)
        except psycopg2.Error:
            continue
        raise AssertionError("accepted: " + sql)


def test_every_binary_has_help_and_version():
    for name in DAEMONS + ["aryzctl"]:
        out = subprocess.run([os.path.join(BIN, name), "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "SYNOPSIS" in out.stdout, name
        out = subprocess.run([os.path.join(BIN, name), "--version"], capture_output=True, text=True)
        assert out.returncode == 0 and "0." in out.stdout, name


def test_config_error_reports_file_and_line(workdir):
    path = os.path.join(workdir, "bad.conf")
    with open(path, "w") as f:
        f.write('log:\n{\n  level = "info";\n};\nbogus_setting = 5;\n')
    out = subprocess.run([os.path.join(BIN, "aryz-routerd"), "-c", path, "--check-config"],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "bad.conf:5: unknown setting 'bogus_setting'" in out.stderr
    with open(path, "w") as f:
        f.write('shutdown_timeout = 99999;\n')
    out = subprocess.run([os.path.join(BIN, "aryz-routerd"), "-c", path, "-n"],
                         capture_output=True, text=True)
    assert "bad.conf:1: 'shutdown_timeout' is 99999, must be between 0 and 3600" in out.stderr
    with open(path, "w") as f:
        f.write('log: { level = "info" \n')
    out = subprocess.run([os.path.join(BIN, "aryz-routerd"), "-c", path, "-n"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "bad.conf:2:" in out.stderr


def test_shipped_configs_check_ok():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "config")
    for name in DAEMONS:
        out = subprocess.run([os.path.join(BIN, name), "-n", "-c",
                              os.path.join(root, name + ".conf")],
                             capture_output=True, text=True)
        assert out.stdout.strip() == "configuration OK", (name, out.stderr)


def test_daemon_starts_and_stops_on_sigterm(db, daemons):
    for name in ["aryz-escalated"]:
        d = daemons(name, 'database: { conninfo = "%s"; };\n' % db.conninfo)
        d.start(wait_log="database connection .* ready")
        assert d.stop() == 0
        assert d.log_contains("stopped")


def test_daemon_reconnects_after_postgres_restart(servers, db, daemons):
    d = daemons("aryz-escalated", 'database: { conninfo = "%s"; };\n' % db.conninfo)
    d.start(wait_log="database connection .* ready")
    size = d.log_size()
    servers.pg_stop()
    try:
        d.wait_log("database connection .* lost", since=size)
        assert d.alive()
    finally:
        servers.pg_start()
    d.wait_log("database connection .* ready", since=size, timeout=30)
    assert d.alive()


def test_sighup_reload_keeps_running_and_rejects_bad_config(db, daemons):
    d = daemons("aryz-escalated", 'database: { conninfo = "%s"; };\n' % db.conninfo)
    d.start(wait_log="database connection .* ready")
    d.write_config('database: { conninfo = "%s"; };\nlog: { level = "debug"; };\n' % db.conninfo)
    d.sighup()
    d.wait_log("configuration reloaded")
    d.write_config('database: { conninfo = "%s" ;\n' % db.conninfo)
    d.sighup()
    d.wait_log("reload FAILED, keeping old configuration")
    assert d.alive()


def test_sighup_keeps_the_log_file_it_cannot_reopen(db, daemons, workdir):
    """After the privilege drop the log file may no longer be ours to open
    (permissions, a rotation into a root-owned directory): SIGHUP then
    keeps logging to the open file instead of switching to stderr."""
    path = os.path.join(workdir, "own.log")

    def text():
        with open(path) as f:
            return f.read()
    d = daemons("aryz-escalated", 'database: { conninfo = "%s"; };\n'
                'log: { file = "%s"; };\n' % (db.conninfo, path))
    d.start()
    wait_for(lambda: os.path.exists(path) and
             "database connection main ready" in text(), 20, "ready, in the log file")
    os.chmod(path, 0o444)
    d.sighup()
    wait_for(lambda: text().count("configuration reloaded") == 1, 10, "first reload")
    d.sighup()
    wait_for(lambda: text().count("configuration reloaded") == 2, 10,
             "second reload logged to the same file")
    assert "configuration reloaded" not in d.log()
    assert d.alive()


def test_dump_config_hides_the_database_password(workdir):
    """--dump-config shows the connection string without its password,
    whichever form it is written in; the rest of it stays readable."""
    path = os.path.join(workdir, "pw.conf")
    for conninfo, shown in [
            ("host=db.example port=5433 dbname=aryz user=aryz password=Hunter2sec",
             "host=db.example"),
            ("host=db.example password='Hunter2sec x' user=aryz", "user=aryz"),
            ("postgresql://aryz:Hunter2sec@db.example:5433/aryz?sslmode=require",
             "sslmode=require")]:
        with open(path, "w") as f:
            f.write('database: { conninfo = "%s"; };\n' % conninfo)
        for name in DAEMONS:
            out = subprocess.run([os.path.join(BIN, name), "-c", path, "--dump-config"],
                                 capture_output=True, text=True)
            assert out.returncode == 0, (name, out.stderr)
            line = [x for x in out.stdout.splitlines()
                    if x.startswith("database.conninfo = ")]
            assert len(line) == 1, (name, out.stdout)
            assert "Hunter2sec" not in out.stdout, (name, line[0])
            assert shown in line[0] and "password not shown" in line[0], (name, line[0])


def test_daemon_waits_for_the_schema_it_needs(db, daemons):
    """A prepared statement the database refuses (schema too old) keeps the
    connection out of service and retrying, until the schema fits."""
    db.execute("ALTER FUNCTION aryz_fire_timers(int, int) RENAME TO aryz_fire_timers_later")
    d = daemons("aryz-escalated", 'database: { conninfo = "%s"; };\n' % db.conninfo)
    d.start(wait_log="setup failed, check the schema")
    d.wait_log("lost: setup refused by the server")
    assert not d.log_contains("database connection .* ready")
    size = d.log_size()
    db.execute("ALTER FUNCTION aryz_fire_timers_later(int, int) RENAME TO aryz_fire_timers")
    d.wait_log("database connection .* ready", since=size, timeout=30)
    assert d.alive()
