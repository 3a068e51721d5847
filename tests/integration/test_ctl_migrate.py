"""aryzctl migrate: concurrent migrators on a fresh database."""
import os
import subprocess

import psycopg2

from harness import BIN, wait_for

DDL = ("CREATE TABLE schema_migration (version text PRIMARY KEY, checksum text NOT NULL, "
       "applied_at timestamptz NOT NULL DEFAULT now())")


def test_second_migrator_waits_for_the_first_on_a_fresh_database(servers):
    name = "rev3_migrate_race"
    servers._admin("DROP DATABASE IF EXISTS %s" % name)
    servers._admin("CREATE DATABASE %s" % name)
    first = psycopg2.connect(servers.conninfo(name))
    try:
        # The first migrator: holds the lock and is creating the table.
        cur = first.cursor()
        cur.execute("SELECT pg_advisory_lock(7263)")
        cur.execute(DDL)
        second = subprocess.Popen([os.path.join(BIN, "aryzctl"), "-d", servers.conninfo(name),
                                   "migrate"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        watch = psycopg2.connect(servers.conninfo(name))
        watch.autocommit = True
        wcur = watch.cursor()

        def waiting():
            wcur.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            return wcur.fetchone()[0] > 0
        wait_for(waiting, what="the second migrator waits")
        watch.close()
        first.commit()
        cur.execute("SELECT pg_advisory_unlock(7263)")
        first.commit()
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert "schema up to date" in out
        cur.execute("SELECT count(*) FROM schema_migration")
        assert cur.fetchone()[0] >= 9
    finally:
        first.close()
        servers._admin("DROP DATABASE IF EXISTS %s" % name)
