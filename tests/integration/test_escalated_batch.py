"""aryz_fire_timers() with a full batch of breaches: every timer acts
exactly once, and the batch does not take a subtransaction id per timer
(past 64 in one transaction, every snapshot in the cluster slows down)."""


def bulk_overdue_breaches(db, n):
    """n routed complaints, each with an overdue ack breach (bulk SQL)."""
    db.execute("INSERT INTO complaint (channel, reporter, status, municipality_soate, "
               "category_code, responsible, provider_id, contract_id, routed_at) "
               "SELECT 'api', 'bulk-' || g, 'routed', '41703220856000', 'waste', 'provider', "
               "1, 1, now() FROM generate_series(1, %s) g", (n,))
    db.execute("INSERT INTO sla_timer (complaint_id, kind, due_at) "
               "SELECT id, 'ack_breach', now() - interval '1 minute' "
               "FROM complaint WHERE reporter LIKE 'bulk-%%'")


def test_a_batch_of_breaches_takes_few_transaction_ids(db):
    n = 150
    bulk_overdue_breaches(db, n)
    before = db.scalar("SELECT txid_current()")
    r = db.one("SELECT fired, acted FROM aryz_fire_timers(200)")
    after = db.scalar("SELECT txid_current()")
    assert (r["fired"], r["acted"]) == (n, n)
    # One for the batch's transaction, one for its subtransaction, one for
    # the second txid_current(); not one per timer.
    assert after - before < 10, after - before
    assert db.scalar("SELECT count(*) FROM complaint WHERE reporter LIKE 'bulk-%%' "
                     "AND escalation_level = 1") == n
    assert db.scalar("SELECT count(*) FROM complaint_event WHERE kind = 'escalated'") == n
    assert db.scalar("SELECT count(*) FROM sla_timer WHERE kind = 'escalate' AND level = 2 "
                     "AND fired_at IS NULL") == n


def test_one_failing_timer_does_not_hold_up_the_batch(db):
    # The batch is rolled back and done again one timer at a time: the bad
    # timer is retried later, the others act once.
    n = 20
    bulk_overdue_breaches(db, n)
    bad = db.scalar("SELECT min(id) FROM complaint WHERE reporter LIKE 'bulk-%%'")
    db.execute("INSERT INTO work_calendar (id, name, workdays) VALUES (70, 'broken', '{}')")
    db.execute("INSERT INTO municipality (soate, rayon_soate, kind, name_ru, name_latin, "
               "calendar_id) SELECT '41703220899999', rayon_soate, kind, 'Broken', 'Broken', 70 "
               "FROM municipality WHERE soate = '41703220856000'")
    db.execute("UPDATE complaint SET municipality_soate = '41703220899999' WHERE id = %s", (bad,))
    r = db.one("SELECT fired, acted FROM aryz_fire_timers(200)")
    assert (r["fired"], r["acted"]) == (n - 1, n - 1)
    t = db.one("SELECT fired_at, attempts, outcome, due_at > now() AS later FROM sla_timer "
               "WHERE complaint_id = %s", (bad,))
    assert t["fired_at"] is None and t["attempts"] == 1 and t["later"]
    assert t["outcome"].startswith("failed: ")
    assert db.scalar("SELECT escalation_level FROM complaint WHERE id = %s", (bad,)) == 0
    assert db.scalar("SELECT count(*) FROM complaint_event WHERE kind = 'escalated'") == n - 1
    assert db.scalar("SELECT count(*) FROM outbox WHERE idem_key LIKE 'timer:%%'") == \
        db.scalar("SELECT count(*) FROM outbox WHERE idem_key LIKE 'timer:%%' AND complaint_id <> %s",
                  (bad,))
