-- 0040_escalation.sql - what firing an SLA timer does.  aryz-escalated
-- calls aryz_fire_timers() in a loop; each call is one transaction that
-- claims a batch of due timers (SKIP LOCKED on their complaints, so
-- several instances never fire one twice), acts on each and marks it
-- fired.  A crash of the daemon or of the database leaves a batch
-- committed or rolled back as a whole, so none is lost either.
--
-- The escalation chain of a complaint (complaint.escalation_level):
--   0  with the responsible party, nothing escalated yet
--   1  provider dispatcher (provider.dispatcher_phone), or the
--      municipality's service desk (municipality.service_phone) when the
--      municipality itself is responsible
--   2  municipal specialist (municipality.specialist_phone)
--   3  head of the aiyl okmotu (municipality.head_phone)
--   4  rayon administration (rayon.admin_phone)
-- Level n+1 is armed when level n is reached, due after
-- sla_policy.escalation_minutes[n+1] working minutes (the last element
-- repeats when the array is shorter than the chain).

-- Bookkeeping of a fired timer: what came of it, and retries of a timer
-- whose action failed (it is retried with backoff, then given up on).
ALTER TABLE sla_timer ADD COLUMN attempts int NOT NULL DEFAULT 0;
ALTER TABLE sla_timer ADD COLUMN outcome text;   -- acted, stale, not_applicable:<status>, failed: ...

-- Highest level of the chain.
CREATE FUNCTION aryz_escalation_top() RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 4 $$;

-- Who is at level p_level of the chain of complaint p_complaint: a role
-- word and a phone (NULL when nobody is registered for it).  (plpgsql,
-- not sql, here and below: its plans are cached across calls, which
-- matters when a batch fires thousands of timers.)
CREATE FUNCTION aryz_escalation_contact(p_complaint bigint, p_level int,
                                        OUT role text, OUT phone text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c complaint;
BEGIN
    SELECT * INTO c FROM complaint WHERE id = p_complaint;
    IF p_level <= 1 AND c.responsible = 'provider' THEN
        role := 'dispatcher';
        SELECT p.dispatcher_phone INTO phone FROM provider p WHERE p.id = c.provider_id;
    ELSIF p_level <= 1 THEN
        role := 'service';
        SELECT m.service_phone INTO phone FROM municipality m WHERE m.soate = c.municipality_soate;
    ELSIF p_level = 2 THEN
        role := 'specialist';
        SELECT m.specialist_phone INTO phone FROM municipality m WHERE m.soate = c.municipality_soate;
    ELSIF p_level = 3 THEN
        role := 'head';
        SELECT m.head_phone INTO phone FROM municipality m WHERE m.soate = c.municipality_soate;
    ELSE
        role := 'rayon';
        SELECT r.admin_phone INTO phone FROM municipality m JOIN rayon r ON r.soate = m.rayon_soate
         WHERE m.soate = c.municipality_soate;
    END IF;
END $$;

-- Working minutes before level p_level is due, from the policy.
CREATE FUNCTION aryz_escalation_delay(p sla_policy, p_level int) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(p.escalation_minutes[p_level],
                    p.escalation_minutes[array_upper(p.escalation_minutes, 1)])
$$;

-- The staff SMS of a timer action (Russian, the working language of the
-- municipal staff): ticket, category, municipality, what, and the start
-- of the resident's text.  One expression, so the planner inlines it.
CREATE FUNCTION aryz_esc_format(p_ticket text, p_category text, p_municipality text,
                                p_what text, p_description text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'aryz №' || p_ticket || ' (' || COALESCE(p_category, '?') || ', '
           || COALESCE(p_municipality, '?') || '): ' || p_what
           || CASE WHEN p_description <> '' THEN ' «' || left(p_description, 60) || '»' ELSE '' END
$$;

-- The same for complaint c, looking the names up.
CREATE FUNCTION aryz_esc_text(c complaint, p_what text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_cat text;
    v_muni text;
BEGIN
    SELECT name_ru INTO v_cat FROM service_category WHERE code = c.category_code;
    SELECT name_ru INTO v_muni FROM municipality WHERE soate = c.municipality_soate;
    RETURN aryz_esc_format(c.ticket, COALESCE(v_cat, c.category_code), v_muni, p_what,
                           c.description);
END $$;

-- Record one timer action: the event, the SMS to p_phone (if any) and
-- the MQTT messages.  Escalations go to the municipality topic and, when
-- a provider is responsible, to the provider topic; p_own_only (warnings
-- and reminders, meant for the responsible party alone) sends only to the
-- responsible party's topic.  Every outbox key holds the timer id, so a
-- timer's notifications exist at most once.  Returns the event id.
CREATE FUNCTION aryz_esc_record(c complaint, t sla_timer, p_kind text, p_key text,
                                p_role text, p_phone text, p_sms text, p_detail jsonb,
                                p_own_only boolean DEFAULT false)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_event bigint;
    v_detail jsonb;
    v_payload jsonb;
BEGIN
    v_detail := jsonb_build_object('timer_id', t.id, 'timer', t.kind, 'timer_level', t.level,
                                   'generation', t.generation, 'due_at', t.due_at,
                                   'role', p_role, 'recipient', p_phone)
                || COALESCE(p_detail, '{}');
    INSERT INTO complaint_event (complaint_id, kind, from_status, to_status, actor, detail)
    VALUES (c.id, p_kind, c.status, c.status, 'aryz-escalated', v_detail)
    RETURNING id INTO v_event;

    IF p_phone IS NOT NULL AND p_sms IS NOT NULL THEN
        PERFORM aryz_outbox_sms('timer:' || t.id || ':' || p_key || ':sms', p_phone, p_sms, c.id);
    END IF;
    v_payload := jsonb_build_object('event', p_kind, 'ticket', c.ticket, 'complaint_id', c.id,
                                    'status', c.status, 'escalation_level', c.escalation_level,
                                    'priority', c.priority, 'role', p_role,
                                    'municipality', c.municipality_soate,
                                    'category', c.category_code, 'provider_id', c.provider_id,
                                    'at', now())
                 || COALESCE(p_detail, '{}');
    IF NOT (p_own_only AND c.responsible = 'provider') THEN
        PERFORM aryz_outbox_mqtt('timer:' || t.id || ':' || p_key || ':muni',
                                 'aryz/v1/' || c.municipality_soate || '/' || c.category_code
                                 || '/escalation', v_payload, c.id);
    END IF;
    IF c.provider_id IS NOT NULL AND c.responsible = 'provider' THEN
        PERFORM aryz_outbox_mqtt('timer:' || t.id || ':' || p_key || ':prov',
                                 'aryz/v1/providers/' || c.provider_id || '/escalations',
                                 v_payload, c.id);
    END IF;
    RETURN v_event;
END $$;

-- Arm (or re-arm a cancelled) timer of the current generation.  A timer
-- that already fired is never re-armed.
CREATE FUNCTION aryz_esc_arm(c complaint, p_kind text, p_level int, p_due timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sla_timer (complaint_id, kind, level, generation, due_at)
    VALUES (c.id, p_kind, p_level, c.reopen_count, p_due)
    ON CONFLICT (complaint_id, kind, level, generation) DO UPDATE
       SET due_at = EXCLUDED.due_at, cancelled_at = NULL, paused_minutes = NULL
     WHERE sla_timer.fired_at IS NULL;
    PERFORM pg_notify('aryz_timer', p_due::text);
END $$;

-- Raise complaint c to level p_level of the chain (capped at the top):
-- notify whoever is there, record it, and arm the next level.  No-op when
-- the complaint is already at or above that level.  p_now is the
-- (possibly offset) clock the next level is armed from.
CREATE FUNCTION aryz_escalate(c complaint, t sla_timer, p_level int, p_reason text,
                              p_now timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_level int := least(p_level, aryz_escalation_top());
    v_prev int := c.escalation_level;
    v_who record;
    v_why text;
    v_pol sla_policy;
    v_delay int;
BEGIN
    IF v_level <= c.escalation_level THEN
        RETURN false;
    END IF;
    UPDATE complaint SET escalation_level = v_level, updated_at = now()
     WHERE id = c.id RETURNING * INTO c;
    -- Pending lower or equal levels are superseded.
    UPDATE sla_timer SET cancelled_at = now(), outcome = 'superseded'
     WHERE complaint_id = c.id AND kind = 'escalate' AND level <= v_level
       AND fired_at IS NULL AND cancelled_at IS NULL;

    v_who := aryz_escalation_contact(c.id, v_level);
    v_why := CASE p_reason WHEN 'ack_breach' THEN 'не подтверждена в срок'
                           WHEN 'resolve_breach' THEN 'не выполнена в срок'
                           ELSE 'нет реакции' END;
    PERFORM aryz_esc_record(c, t, 'escalated', 'L' || v_level, v_who.role, v_who.phone,
                            aryz_esc_text(c, 'эскалация, уровень ' || v_level || ': ' || v_why || '.'),
                            jsonb_build_object('level', v_level, 'previous_level', v_prev,
                                               'reason', p_reason));

    IF v_level < aryz_escalation_top() AND c.status IN ('routed', 'acknowledged', 'in_progress') THEN
        v_pol := aryz_policy_of(c.id);
        v_delay := aryz_escalation_delay(v_pol, v_level + 1);
        IF v_delay IS NOT NULL THEN
            PERFORM aryz_esc_arm(c, 'escalate', v_level + 1,
                                 aryz_work_add(c.municipality_soate, p_now, v_delay));
        END IF;
    END IF;
    RETURN true;
END $$;

-- Act on one claimed timer.  Returns 'acted', or why it had no effect
-- ('stale': an older generation than the complaint's reopen count;
-- 'not_applicable:<status>': the complaint is in a state where this
-- timer no longer means anything).  p_now: the (offset) clock.
CREATE FUNCTION aryz_fire_timer(t sla_timer, p_now timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    c complaint;
    v_open boolean;
    v_who record;
    v_pol sla_policy;
    v_res text;
BEGIN
    SELECT * INTO c FROM complaint WHERE id = t.complaint_id;
    IF t.generation <> c.reopen_count THEN
        RETURN 'stale';
    END IF;
    v_open := c.status IN ('routed', 'acknowledged', 'in_progress');

    CASE t.kind
    WHEN 'ack_breach', 'resolve_breach' THEN
        IF NOT (CASE WHEN t.kind = 'ack_breach' THEN c.status = 'routed' ELSE v_open END) THEN
            RETURN 'not_applicable:' || c.status;
        END IF;
        -- The breach itself is recorded (MQTT, no SMS: the escalation
        -- that follows carries the SMS to the next level up).
        PERFORM aryz_esc_record(c, t, 'sla_breach', 'breach', NULL, NULL, NULL,
            jsonb_build_object('sla', split_part(t.kind, '_', 1)));
        PERFORM aryz_escalate(c, t, c.escalation_level + 1, t.kind, p_now);

    WHEN 'escalate' THEN
        IF NOT v_open THEN
            RETURN 'not_applicable:' || c.status;
        END IF;
        IF NOT aryz_escalate(c, t, t.level, 'escalate', p_now) THEN
            RETURN 'not_applicable:level_' || c.escalation_level;
        END IF;

    WHEN 'legal_bound' THEN
        -- The law's outer bound: always enforced, also while the clock
        -- of the SLA is paused for the resident.
        IF NOT (v_open OR c.status = 'waiting_resident') THEN
            RETURN 'not_applicable:' || c.status;
        END IF;
        UPDATE complaint SET escalation_level = aryz_escalation_top(), updated_at = now()
         WHERE id = c.id RETURNING * INTO c;
        UPDATE sla_timer SET cancelled_at = now(), outcome = 'superseded'
         WHERE complaint_id = c.id AND kind = 'escalate'
           AND fired_at IS NULL AND cancelled_at IS NULL;
        v_who := aryz_escalation_contact(c.id, 3);
        PERFORM aryz_esc_record(c, t, 'legal_bound', 'head', v_who.role, v_who.phone,
            aryz_esc_text(c, 'истёк законный срок ответа на обращение.'),
            jsonb_build_object('level', c.escalation_level,
                               'legal_bound_days', (aryz_policy_of(c.id)).legal_bound_days));
        v_who := aryz_escalation_contact(c.id, 4);
        IF v_who.phone IS NOT NULL THEN
            PERFORM aryz_outbox_sms('timer:' || t.id || ':rayon:sms', v_who.phone,
                aryz_esc_text(c, 'истёк законный срок ответа на обращение.'), c.id);
        END IF;

    WHEN 'update' THEN
        IF NOT v_open THEN
            RETURN 'not_applicable:' || c.status;
        END IF;
        v_who := aryz_escalation_contact(c.id, 1);
        PERFORM aryz_esc_record(c, t, 'update_reminder', 'update', v_who.role, v_who.phone,
            aryz_esc_text(c, 'сообщите о ходе работ.'), jsonb_build_object('reminder', t.level + 1),
            true);
        v_pol := aryz_policy_of(c.id);
        IF v_pol.update_minutes IS NOT NULL THEN
            PERFORM aryz_esc_arm(c, 'update', t.level + 1,
                                 aryz_work_add(c.municipality_soate, p_now, v_pol.update_minutes));
        END IF;

    WHEN 'auto_close' THEN
        -- A resident who disputed reopened the complaint (a new
        -- generation, status routed); only an undisputed one closes.
        IF c.status <> 'resolved' THEN
            RETURN 'not_applicable:' || c.status;
        END IF;
        v_res := aryz_transition(c.id, 'closed', 'aryz-escalated',
                                 jsonb_build_object('reason', 'auto_close', 'timer_id', t.id));
        IF v_res IS NOT NULL THEN
            RETURN 'not_applicable:' || v_res;
        END IF;
    ELSE
        -- ack_warn and resolve_warn are fired by aryz_fire_warnings().
        RAISE EXCEPTION 'aryz_fire_timer: unexpected timer kind %', t.kind;
    END CASE;
    RETURN 'acted';
END $$;

-- Warnings (ack_warn, resolve_warn) to the responsible party: the
-- event, an SMS to the dispatcher (or the municipality's service desk)
-- and one MQTT message on the responsible party's own topic.  They change
-- nothing but the history and the outbox, so the order within a batch
-- does not matter and a whole batch of them is fired in one set-based
-- statement, several times faster than one at a time.  p_ids must be
-- claimed (locked) by the caller; returns (fired, acted).
CREATE FUNCTION aryz_fire_warnings(p_ids bigint[], OUT fired int, OUT acted int)
LANGUAGE plpgsql AS $$
BEGIN
    WITH w AS (
        SELECT t.id, t.kind, t.level, t.generation, t.due_at, c.id AS cid, c.ticket,
               c.status, c.escalation_level, c.priority, c.municipality_soate,
               c.category_code, c.provider_id, c.responsible, c.description,
               CASE WHEN t.generation <> c.reopen_count THEN 'stale'
                    WHEN (t.kind = 'ack_warn' AND c.status = 'routed')
                      OR (t.kind = 'resolve_warn'
                          AND c.status IN ('routed', 'acknowledged', 'in_progress'))
                    THEN 'acted'
                    ELSE 'not_applicable:' || c.status END AS outcome,
               split_part(t.kind, '_', 1) AS sla,
               b.due_at AS breach_at,
               CASE WHEN c.responsible = 'provider' THEN 'dispatcher' ELSE 'service' END AS role,
               (CASE WHEN c.responsible = 'provider' THEN p.dispatcher_phone
                     ELSE m.service_phone END)::text AS phone,
               COALESCE(sc.name_ru, c.category_code) AS cat_name, m.name_ru AS muni_name,
               COALESCE(wc.timezone, 'Asia/Bishkek') AS tz,
               CASE WHEN c.responsible = 'provider' AND c.provider_id IS NOT NULL
                    THEN 'prov' ELSE 'muni' END AS topic_key
          -- LATERAL ... OFFSET 0: index lookups per timer; a batch is a
          -- sliver of the tables, which the planner cannot know.
          FROM sla_timer t
          CROSS JOIN LATERAL (SELECT * FROM complaint c0
                               WHERE c0.id = t.complaint_id OFFSET 0) c
          LEFT JOIN provider p ON p.id = c.provider_id
          LEFT JOIN municipality m ON m.soate = c.municipality_soate
          LEFT JOIN work_calendar wc ON wc.id = m.calendar_id
          LEFT JOIN service_category sc ON sc.code = c.category_code
          LEFT JOIN LATERAL (SELECT b0.due_at FROM sla_timer b0
                              WHERE b0.complaint_id = t.complaint_id
                                AND b0.generation = t.generation AND b0.level = 0
                                AND b0.kind = replace(t.kind, '_warn', '_breach')
                                AND b0.cancelled_at IS NULL OFFSET 0) b ON true
         WHERE t.id = ANY (p_ids) AND t.kind IN ('ack_warn', 'resolve_warn')
           AND t.fired_at IS NULL AND t.cancelled_at IS NULL
    ), u AS (
        UPDATE sla_timer s SET fired_at = clock_timestamp(), attempts = s.attempts + 1,
                               outcome = w.outcome
          FROM w WHERE s.id = w.id
        RETURNING s.id
    ), a AS (
        SELECT w.*,
               jsonb_build_object('timer_id', w.id, 'timer', w.kind, 'timer_level', w.level,
                                  'generation', w.generation, 'due_at', w.due_at,
                                  'role', w.role, 'recipient', w.phone,
                                  'sla', w.sla, 'breach_at', w.breach_at) AS detail,
               jsonb_build_object('event', 'sla_warning', 'ticket', w.ticket,
                                  'complaint_id', w.cid, 'status', w.status,
                                  'escalation_level', w.escalation_level,
                                  'priority', w.priority, 'role', w.role,
                                  'municipality', w.municipality_soate,
                                  'category', w.category_code, 'provider_id', w.provider_id,
                                  'at', now(), 'sla', w.sla, 'breach_at', w.breach_at) AS payload,
               aryz_esc_format(w.ticket, w.cat_name, w.muni_name,
                   CASE WHEN w.kind = 'ack_warn' THEN 'подтвердите заявку'
                        ELSE 'выполните заявку' END
                   || COALESCE(' до ' || to_char(w.breach_at AT TIME ZONE w.tz, 'DD.MM HH24:MI'), '')
                   || '.', w.description) AS sms
          FROM w WHERE w.outcome = 'acted'
    ), ev AS (
        INSERT INTO complaint_event (complaint_id, kind, from_status, to_status, actor, detail)
        SELECT a.cid, 'sla_warning', a.status, a.status, 'aryz-escalated', a.detail FROM a
        RETURNING 1
    ), sms AS (
        INSERT INTO outbox (channel, idem_key, recipient, body, complaint_id)
        SELECT 'sms', 'timer:' || a.id || ':warn:sms', a.phone, a.sms, a.cid
          FROM a WHERE a.phone IS NOT NULL
        ON CONFLICT (idem_key) DO NOTHING
        RETURNING 1
    ), mq AS (
        INSERT INTO outbox (channel, idem_key, recipient, body, complaint_id)
        SELECT 'mqtt', 'timer:' || a.id || ':warn:' || a.topic_key,
               CASE WHEN a.topic_key = 'prov'
                    THEN 'aryz/v1/providers/' || a.provider_id || '/escalations'
                    ELSE 'aryz/v1/' || a.municipality_soate || '/' || a.category_code || '/escalation'
               END, a.payload::text, a.cid
          FROM a
        ON CONFLICT (idem_key) DO NOTHING
        RETURNING 1
    )
    -- (Data-modifying CTEs run to completion whether read or not.)
    SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM a) INTO fired, acted;
    IF acted > 0 THEN
        -- As aryz_outbox_sms/aryz_outbox_mqtt do, once per batch.
        PERFORM pg_notify('aryz_outbox', 'sms');
        PERFORM pg_notify('aryz_outbox', 'mqtt');
    END IF;
END $$;

-- A timer's action raised p_err: retry it after attempts minutes, give up
-- after 5 attempts (fired, outcome 'failed: ...').  True if given up.
CREATE FUNCTION aryz_timer_failed(p_id bigint, p_err text, p_now timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_gave_up boolean;
BEGIN
    RAISE WARNING 'sla_timer %: %', p_id, p_err;
    UPDATE sla_timer
       SET attempts = attempts + 1,
           outcome = 'failed: ' || left(p_err, 400),
           fired_at = CASE WHEN attempts + 1 >= 5 THEN clock_timestamp() END,
           due_at = CASE WHEN attempts + 1 >= 5 THEN due_at
                         ELSE p_now + (attempts + 1) * interval '1 minute' END
     WHERE id = p_id
    RETURNING fired_at IS NOT NULL INTO v_gave_up;
    RETURN COALESCE(v_gave_up, false);
END $$;

-- Fire one claimed timer of aryz_fire_timers: NULL if it is no longer
-- pending (an earlier timer of the batch may have cancelled it), else its
-- outcome ('acted', 'stale', 'not_applicable:<status>').  Marked fired
-- first: what it does may cancel the complaint's pending timers
-- (aryz_escalate, aryz_transition), not itself.
CREATE FUNCTION aryz_fire_one(p_id bigint, p_now timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    t sla_timer;
    v_out text;
BEGIN
    SELECT * INTO t FROM sla_timer WHERE id = p_id;
    IF t.fired_at IS NOT NULL OR t.cancelled_at IS NOT NULL THEN
        RETURN NULL;
    END IF;
    UPDATE sla_timer SET fired_at = clock_timestamp(), attempts = attempts + 1,
                         outcome = 'acted'
     WHERE id = p_id;
    v_out := aryz_fire_timer(t, p_now);
    IF v_out <> 'acted' THEN
        UPDATE sla_timer SET outcome = v_out WHERE id = p_id;
    END IF;
    RETURN v_out;
END $$;

-- Fire up to p_limit due timers in this transaction.  Due means due_at <=
-- now() + p_offset_seconds; the offset is for TESTS ONLY (config key
-- timers.clock_offset_seconds), production passes 0 and runs the same
-- code.  Returns how many were fired (marked fired_at), how many of
-- those acted, the next due time (in real time, NULL when nothing is
-- armed) and the milliseconds until then (0 when overdue).
--
-- Order within a batch: due time, then breaches before escalations and
-- warnings, so a breach and an escalation due at the same moment raise
-- the complaint one level, not two.  A timer whose action raises an
-- error is retried after attempts minutes, and given up (fired with
-- outcome 'failed: ...') after 5 attempts; the rest of the batch goes on.
CREATE FUNCTION aryz_fire_timers(p_limit int, p_offset_seconds int DEFAULT 0)
RETURNS TABLE (fired int, acted int, next_due timestamptz, next_in_ms bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_off interval := make_interval(secs => greatest(COALESCE(p_offset_seconds, 0), 0));
    v_now timestamptz := now() + v_off;
    v_cand bigint[];
    v_ids bigint[];
    v_warn bigint[];
    v_id bigint;
    v_f int;
    v_a int;
    v_out text;
    v_err text;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'aryz_fire_timers: p_limit must be positive, got %', p_limit;
    END IF;
    fired := 0;
    acted := 0;

    -- Claim, in two steps.  1: lock the complaints of the first due
    -- timers, skipping any another transaction holds (another instance,
    -- or aryz_transition changing the complaint right now: its timers are
    -- looked at next round).  Only complaints are locked here: whoever
    -- holds a complaint owns its timers (aryz_transition locks the
    -- complaint before it touches them).  Locking the timer rows in the
    -- same SKIP LOCKED statement would keep locks on timers of skipped
    -- complaints, and two instances could then deadlock.
    SELECT array_agg(x.id) INTO v_cand
      FROM (SELECT s.id
              FROM sla_timer s JOIN complaint c ON c.id = s.complaint_id
             WHERE s.fired_at IS NULL AND s.cancelled_at IS NULL AND s.due_at <= v_now
             ORDER BY s.due_at, s.id
             LIMIT p_limit
               FOR NO KEY UPDATE OF c SKIP LOCKED) x;
    -- 2: lock those timers and look at them again (a fresh snapshot): one
    -- another instance fired just before we got its complaint drops out.
    SELECT array_agg(x.id) FILTER (WHERE x.kind IN ('ack_warn', 'resolve_warn')),
           array_agg(x.id ORDER BY x.due_at,
                     CASE WHEN x.kind LIKE '%_breach' THEN 0 WHEN x.kind = 'legal_bound' THEN 1
                          WHEN x.kind = 'escalate' THEN 2 ELSE 3 END, x.id)
               FILTER (WHERE x.kind NOT IN ('ack_warn', 'resolve_warn'))
      INTO v_warn, v_ids
      FROM (SELECT s.id, s.due_at, s.kind FROM sla_timer s
             WHERE s.id = ANY (v_cand)
               AND s.fired_at IS NULL AND s.cancelled_at IS NULL AND s.due_at <= v_now
               FOR NO KEY UPDATE) x;

    -- Warnings first, all at once (see aryz_fire_warnings: their order
    -- does not matter).  If the batch statement fails, one at a time, so
    -- a bad one cannot hold up the others.
    IF v_warn IS NOT NULL THEN
        BEGIN
            SELECT w.fired, w.acted INTO v_f, v_a FROM aryz_fire_warnings(v_warn) w;
            fired := fired + v_f;
            acted := acted + v_a;
        EXCEPTION WHEN OTHERS THEN
            FOREACH v_id IN ARRAY v_warn LOOP
                BEGIN
                    SELECT w.fired, w.acted INTO v_f, v_a FROM aryz_fire_warnings(ARRAY[v_id]) w;
                    fired := fired + v_f;
                    acted := acted + v_a;
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
                    IF aryz_timer_failed(v_id, v_err, v_now) THEN
                        fired := fired + 1;
                    END IF;
                END;
            END LOOP;
        END;
    END IF;

    -- The rest one by one, in order: they change the complaint.  All in
    -- one subtransaction: a subtransaction per timer would give the
    -- transaction a subtransaction id per timer, and past 64 every
    -- snapshot in the cluster slows down while it runs (see
    -- aryz_route_batch).  Only if one of them raises are they done again,
    -- each in its own subtransaction, so a bad one holds up no other.
    IF v_ids IS NOT NULL THEN
        v_f := fired;
        v_a := acted;
        BEGIN
            FOREACH v_id IN ARRAY v_ids LOOP
                v_out := aryz_fire_one(v_id, v_now);
                CONTINUE WHEN v_out IS NULL;
                fired := fired + 1;
                IF v_out = 'acted' THEN
                    acted := acted + 1;
                END IF;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            -- Everything above was rolled back, the counts too.
            fired := v_f;
            acted := v_a;
            FOREACH v_id IN ARRAY v_ids LOOP
                BEGIN
                    v_out := aryz_fire_one(v_id, v_now);
                    CONTINUE WHEN v_out IS NULL;
                    fired := fired + 1;
                    IF v_out = 'acted' THEN
                        acted := acted + 1;
                    END IF;
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
                    IF aryz_timer_failed(v_id, v_err, v_now) THEN
                        fired := fired + 1;
                    END IF;
                END;
            END LOOP;
        END;
    END IF;

    SELECT s.due_at - v_off INTO next_due FROM sla_timer s
     WHERE s.fired_at IS NULL AND s.cancelled_at IS NULL AND s.due_at < 'infinity'
     ORDER BY s.due_at, s.id LIMIT 1;
    next_in_ms := CASE WHEN next_due IS NOT NULL THEN
        greatest(0, ceil(extract(epoch FROM next_due - clock_timestamp()) * 1000))::bigint END;
    RETURN NEXT;
END $$;
