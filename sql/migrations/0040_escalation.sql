-- 0040_escalation.sql - what firing an SLA timer does.  aryz-escalated
-- calls aryz_fire_timers() in a loop; each call is one transaction that
-- claims a batch of due timers (FOR NO KEY UPDATE SKIP LOCKED, so several
-- instances never fire one twice), acts on each and marks it fired.  A
-- crash rolls the batch back, so none is lost either.
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
-- word and a phone (NULL when nobody is registered for it).
CREATE FUNCTION aryz_escalation_contact(p_complaint bigint, p_level int,
                                        OUT role text, OUT phone text)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_level <= 1 AND c.responsible = 'provider' THEN 'dispatcher'
                WHEN p_level <= 1 THEN 'service'
                WHEN p_level = 2 THEN 'specialist'
                WHEN p_level = 3 THEN 'head'
                ELSE 'rayon' END,
           CASE WHEN p_level <= 1 AND c.responsible = 'provider' THEN p.dispatcher_phone
                WHEN p_level <= 1 THEN m.service_phone
                WHEN p_level = 2 THEN m.specialist_phone
                WHEN p_level = 3 THEN m.head_phone
                ELSE r.admin_phone END::text
      FROM complaint c
      LEFT JOIN provider p ON p.id = c.provider_id
      LEFT JOIN municipality m ON m.soate = c.municipality_soate
      LEFT JOIN rayon r ON r.soate = m.rayon_soate
     WHERE c.id = p_complaint
$$;

-- Working minutes before level p_level is due, from the policy.
CREATE FUNCTION aryz_escalation_delay(p sla_policy, p_level int) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(p.escalation_minutes[p_level],
                    p.escalation_minutes[array_upper(p.escalation_minutes, 1)])
$$;

-- The staff SMS of a timer action: ticket, category, municipality, what.
CREATE FUNCTION aryz_esc_text(c complaint, p_what text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT 'aryz №' || c.ticket || ' ('
           || COALESCE((SELECT name_ru FROM service_category WHERE code = c.category_code), c.category_code)
           || ', ' || COALESCE((SELECT name_ru FROM municipality WHERE soate = c.municipality_soate), '?')
           || '): ' || p_what
           || CASE WHEN c.description <> '' THEN ' «' || left(c.description, 60) || '»' ELSE '' END
$$;

-- Local time of ts in the municipality's calendar, for SMS texts.
CREATE FUNCTION aryz_esc_local(p_soate text, ts timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(ts AT TIME ZONE wc.timezone, 'DD.MM HH24:MI')
      FROM work_calendar wc WHERE wc.id = aryz_calendar_of(p_soate)
$$;

-- Record one timer action: the event, the SMS to p_phone (if any) and
-- the MQTT messages (municipality topic, and provider topic when a
-- provider is responsible).  Every outbox key holds the timer id, so a
-- timer's notifications exist at most once.  Returns the event id.
CREATE FUNCTION aryz_esc_record(c complaint, t sla_timer, p_kind text, p_key text,
                                p_role text, p_phone text, p_sms text, p_detail jsonb)
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
    PERFORM aryz_outbox_mqtt('timer:' || t.id || ':' || p_key || ':muni',
                             'aryz/v1/' || c.municipality_soate || '/' || c.category_code || '/escalation',
                             v_payload, c.id);
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
    v_due timestamptz;
    v_pol sla_policy;
    v_res text;
BEGIN
    SELECT * INTO c FROM complaint WHERE id = t.complaint_id;
    IF t.generation <> c.reopen_count THEN
        RETURN 'stale';
    END IF;
    v_open := c.status IN ('routed', 'acknowledged', 'in_progress');

    CASE t.kind
    WHEN 'ack_warn', 'resolve_warn' THEN
        IF NOT (CASE WHEN t.kind = 'ack_warn' THEN c.status = 'routed' ELSE v_open END) THEN
            RETURN 'not_applicable:' || c.status;
        END IF;
        SELECT due_at INTO v_due FROM sla_timer
         WHERE complaint_id = c.id AND generation = t.generation
           AND kind = replace(t.kind, '_warn', '_breach') AND cancelled_at IS NULL;
        v_who := aryz_escalation_contact(c.id, 1);
        PERFORM aryz_esc_record(c, t, 'sla_warning', 'warn', v_who.role, v_who.phone,
            aryz_esc_text(c, CASE WHEN t.kind = 'ack_warn' THEN 'подтвердите заявку'
                                  ELSE 'выполните заявку' END
                             || COALESCE(' до ' || aryz_esc_local(c.municipality_soate, v_due), '')
                             || '.'),
            jsonb_build_object('sla', split_part(t.kind, '_', 1), 'breach_at', v_due));

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
            aryz_esc_text(c, 'сообщите о ходе работ.'), jsonb_build_object('reminder', t.level + 1));
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
        RAISE EXCEPTION 'unknown timer kind %', t.kind;
    END CASE;
    RETURN 'acted';
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
    v_ids bigint[];
    v_id bigint;
    t sla_timer;
    v_out text;
    v_err text;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'aryz_fire_timers: p_limit must be positive, got %', p_limit;
    END IF;
    fired := 0;
    acted := 0;

    -- Claim: the timer and its complaint, skipping any another
    -- transaction holds (another instance, or aryz_transition changing
    -- the complaint right now: that timer is looked at next round).
    SELECT array_agg(x.id ORDER BY x.due_at,
                     CASE WHEN x.kind LIKE '%_breach' THEN 0 WHEN x.kind = 'legal_bound' THEN 1
                          WHEN x.kind = 'escalate' THEN 2 ELSE 3 END, x.id)
      INTO v_ids
      FROM (SELECT s.id, s.due_at, s.kind
              FROM sla_timer s JOIN complaint c ON c.id = s.complaint_id
             WHERE s.fired_at IS NULL AND s.cancelled_at IS NULL AND s.due_at <= v_now
             ORDER BY s.due_at, s.id
             LIMIT p_limit
               FOR NO KEY UPDATE OF s, c SKIP LOCKED) x;

    FOREACH v_id IN ARRAY COALESCE(v_ids, '{}') LOOP
        -- Re-read: an earlier timer of this batch may have cancelled it.
        SELECT * INTO t FROM sla_timer WHERE id = v_id;
        CONTINUE WHEN t.fired_at IS NOT NULL OR t.cancelled_at IS NOT NULL;
        BEGIN
            -- Fired first: what it does may cancel the complaint's
            -- pending timers (aryz_escalate, aryz_transition), not it.
            UPDATE sla_timer SET fired_at = clock_timestamp(), attempts = attempts + 1
             WHERE id = v_id;
            v_out := aryz_fire_timer(t, v_now);
            UPDATE sla_timer SET outcome = v_out WHERE id = v_id;
            fired := fired + 1;
            IF v_out = 'acted' THEN
                acted := acted + 1;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
            RAISE WARNING 'sla_timer %: %', v_id, v_err;
            UPDATE sla_timer
               SET attempts = attempts + 1,
                   outcome = 'failed: ' || left(v_err, 400),
                   fired_at = CASE WHEN attempts + 1 >= 5 THEN clock_timestamp() END,
                   due_at = CASE WHEN attempts + 1 >= 5 THEN due_at
                                 ELSE v_now + (attempts + 1) * interval '1 minute' END
             WHERE id = v_id;
            IF t.attempts + 1 >= 5 THEN
                fired := fired + 1;
            END IF;
        END;
    END LOOP;

    SELECT s.due_at - v_off INTO next_due FROM sla_timer s
     WHERE s.fired_at IS NULL AND s.cancelled_at IS NULL AND s.due_at < 'infinity'
     ORDER BY s.due_at, s.id LIMIT 1;
    next_in_ms := CASE WHEN next_due IS NOT NULL THEN
        greatest(0, ceil(extract(epoch FROM next_due - clock_timestamp()) * 1000))::bigint END;
    RETURN NEXT;
END $$;
