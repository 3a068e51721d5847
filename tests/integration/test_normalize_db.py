"""test_normalize_db.py - the normalizer's lexicon loaded from a real
PostgreSQL database (migrated, reference data loaded by aryzctl): the
LEXICON_SQL_* queries in common/lexicon_pg.h run against the real schema,
and the aliases aryzctl stored classify the whole table of
tests/unit/data/normalize.txt as the CSV-built lexicon does.  Retired
municipalities (valid_to passed) must not be loaded."""
import os
import subprocess

import harness

UNIT = os.path.join(harness.ROOT, "tests", "unit")
BINARY = os.path.join(harness.BUILD, "tests", "test_normalize")


def run_unit(conninfo, retired=None):
    env = dict(os.environ, ARYZ_TEST_CONNINFO=conninfo)
    if retired:
        env["ARYZ_TEST_RETIRED"] = retired
    p = subprocess.run([BINARY], cwd=UNIT, env=env, capture_output=True,
                       text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    return out


def test_table_against_real_reference(db):
    out = run_unit(db.conninfo)
    assert "real database:" in out and "classified as expected" in out, out
    assert "[  SKIPPED ]" not in out, out


def test_retired_municipality_not_loaded(db):
    suzak = "41703220856000"
    assert db.scalar("SELECT count(*) FROM municipality_alias WHERE soate = %s",
                     (suzak,)) > 0
    db.execute("UPDATE municipality SET valid_to = current_date WHERE soate = %s",
               (suzak,))
    out = run_unit(db.conninfo, retired=suzak)
    assert "retired municipality %s not loaded" % suzak in out, out
