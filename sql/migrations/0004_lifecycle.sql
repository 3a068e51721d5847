-- 0004_lifecycle.sql - the complaint lifecycle every daemon shares:
-- settings, working-time arithmetic, arming SLA timers, and the one
-- function through which a complaint changes status (aryz_transition).

CREATE TABLE aryz_setting (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
INSERT INTO aryz_setting (key, value) VALUES
    ('followup_days', '7'),            -- resident may rate or reopen within
    ('duplicate_window_hours', '72'),  -- "me too" window for routerd
    ('max_job_attempts', '8');         -- then the job goes to dead_letter

-- The small look-ups below are PL/pgSQL rather than SQL functions: called
-- once per complaint or timer from other PL/pgSQL code, an SQL function is
-- planned again on every call, PL/pgSQL keeps its plan (routing spent
-- about 0.4 ms per call planning them).
CREATE FUNCTION aryz_setting_int(p_key text, p_default int) RETURNS int
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN COALESCE((SELECT value::int FROM aryz_setting WHERE key = p_key), p_default);
END $$;

-- Policy 0 applies when no contract covers a complaint: the municipality
-- itself is responsible, within the law on citizens' appeals (register
-- within 1 working day, answer within 14 working days).
INSERT INTO sla_policy (id, name, ack_minutes, resolve_minutes, update_minutes,
                        warn_percent, legal_bound_days, escalation_minutes)
VALUES (0, 'municipality default', 540, 7560, NULL, 80, 14, '{540,1080,2160}');

-- While a complaint waits for the resident its resolve clock is paused:
-- the remaining working minutes are kept here and due_at is 'infinity'.
ALTER TABLE sla_timer ADD COLUMN paused_minutes double precision;

-- Is local date d a working day of calendar cal?
CREATE FUNCTION aryz_is_workday(p_cal int, d date) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT extract(isodow FROM d)::int = ANY (wc.workdays)
       AND NOT EXISTS (SELECT 1 FROM calendar_holiday h
                        WHERE h.calendar_id = p_cal
                          AND (h.day = d OR (h.month = extract(month FROM d)::int
                                             AND h.mday = extract(day FROM d)::int)))
      FROM work_calendar wc WHERE wc.id = p_cal
$$;

-- The calendar of a municipality (1, the national one, if unknown).
CREATE FUNCTION aryz_calendar_of(p_soate text) RETURNS int
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN COALESCE((SELECT calendar_id FROM municipality WHERE soate = p_soate), 1);
END $$;

-- p_start plus p_minutes working minutes of the municipality's calendar
-- (weekdays, working hours in its time zone, holidays).  The holidays are
-- read once per call into arrays: this runs for every timer armed.
CREATE FUNCTION aryz_work_add(p_soate text, p_start timestamptz, p_minutes double precision)
RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
DECLARE
    cal int := aryz_calendar_of(p_soate);
    wc work_calendar;
    days date[];
    mdays int[];
    t timestamp;
    d date;
    day_end timestamp;
    avail double precision;
    left_min double precision := p_minutes;
BEGIN
    IF p_minutes IS NULL OR p_minutes <= 0 THEN
        RETURN p_start;
    END IF;
    SELECT * INTO wc FROM work_calendar WHERE id = cal;
    SELECT COALESCE(array_agg(day) FILTER (WHERE day IS NOT NULL), '{}'),
           COALESCE(array_agg(month * 100 + mday) FILTER (WHERE month IS NOT NULL), '{}')
      INTO days, mdays FROM calendar_holiday WHERE calendar_id = cal;
    t := p_start AT TIME ZONE wc.timezone;
    FOR i IN 1 .. 3660 LOOP            -- ten years of days at most
        d := t::date;
        IF extract(isodow FROM d)::int = ANY (wc.workdays)
           AND NOT d = ANY (days)
           AND NOT (extract(month FROM d) * 100 + extract(day FROM d))::int = ANY (mdays) THEN
            IF t < d + wc.work_start THEN
                t := d + wc.work_start;
            END IF;
            day_end := d + wc.work_end;
            IF t < day_end THEN
                avail := extract(epoch FROM day_end - t) / 60;
                IF avail >= left_min THEN
                    RETURN (t + left_min * interval '1 minute') AT TIME ZONE wc.timezone;
                END IF;
                left_min := left_min - avail;
            END IF;
        END IF;
        t := (d + 1) + wc.work_start;
    END LOOP;
    RAISE EXCEPTION 'calendar % has no working time', cal;
END $$;

-- Working minutes of the municipality's calendar between a and b (0 if b <= a).
CREATE FUNCTION aryz_work_between(p_soate text, a timestamptz, b timestamptz)
RETURNS double precision LANGUAGE plpgsql STABLE AS $$
DECLARE
    cal int := aryz_calendar_of(p_soate);
    wc work_calendar;
    t timestamp;
    e timestamp;
    d date;
    s timestamp;
    f timestamp;
    total double precision := 0;
BEGIN
    IF b IS NULL OR a IS NULL OR b <= a THEN
        RETURN 0;
    END IF;
    IF b = 'infinity' THEN
        RETURN NULL;
    END IF;
    SELECT * INTO wc FROM work_calendar WHERE id = cal;
    t := a AT TIME ZONE wc.timezone;
    e := b AT TIME ZONE wc.timezone;
    WHILE t < e LOOP
        d := t::date;
        IF aryz_is_workday(cal, d) THEN
            s := greatest(t, d + wc.work_start);
            f := least(e, d + wc.work_end);
            IF f > s THEN
                total := total + extract(epoch FROM f - s) / 60;
            END IF;
        END IF;
        t := (d + 1)::timestamp;
    END LOOP;
    RETURN total;
END $$;

-- The SLA policy that governs a complaint: its contract's, else policy 0.
CREATE FUNCTION aryz_policy_of(p_complaint bigint) RETURNS sla_policy
LANGUAGE plpgsql STABLE AS $$
DECLARE
    p sla_policy;
BEGIN
    SELECT sp.* INTO p FROM sla_policy sp
     WHERE sp.id = COALESCE((SELECT ct.sla_policy_id FROM complaint c
                               JOIN contract ct ON ct.id = c.contract_id
                              WHERE c.id = p_complaint), 0);
    RETURN p;
END $$;

-- Arm the SLA timers of a routed complaint (from now).  Generation is the
-- reopen count, so a reopened complaint gets a fresh set.  Idempotent.
CREATE FUNCTION aryz_arm_sla(p_complaint bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c complaint;
    p sla_policy;
    now_ts timestamptz := now();
    day_min double precision;
    soonest timestamptz;
BEGIN
    SELECT * INTO c FROM complaint WHERE id = p_complaint;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'complaint % not found', p_complaint;
    END IF;
    p := aryz_policy_of(p_complaint);
    SELECT extract(epoch FROM work_end - work_start) / 60 INTO day_min
      FROM work_calendar WHERE id = aryz_calendar_of(c.municipality_soate);

    INSERT INTO sla_timer (complaint_id, kind, level, generation, due_at)
    SELECT p_complaint, k.kind, k.level, c.reopen_count,
           aryz_work_add(c.municipality_soate, now_ts, k.minutes)
      FROM (VALUES ('ack_warn', 0, p.ack_minutes * p.warn_percent / 100.0),
                   ('ack_breach', 0, p.ack_minutes::double precision),
                   ('resolve_warn', 0, p.resolve_minutes * p.warn_percent / 100.0),
                   ('resolve_breach', 0, p.resolve_minutes::double precision),
                   ('legal_bound', 0, p.legal_bound_days * day_min),
                   ('escalate', 1, p.escalation_minutes[1]::double precision),
                   ('update', 0, p.update_minutes::double precision))
           AS k(kind, level, minutes)
     WHERE k.minutes IS NOT NULL
       -- an acknowledged (reopened) complaint needs no acknowledge timers
       AND NOT (k.kind LIKE 'ack_%' AND c.status NOT IN ('routed', 'received', 'triage'))
    ON CONFLICT (complaint_id, kind, level, generation) DO NOTHING;

    SELECT min(due_at) INTO soonest FROM sla_timer
     WHERE complaint_id = p_complaint AND fired_at IS NULL AND cancelled_at IS NULL;
    PERFORM pg_notify('aryz_timer', COALESCE(soonest::text, ''));
END $$;

-- Cancel the pending timers of a complaint whose kind is in p_kinds (NULL = all).
CREATE FUNCTION aryz_cancel_timers(p_complaint bigint, p_kinds text[]) RETURNS int
LANGUAGE sql AS $$
    WITH u AS (
        UPDATE sla_timer SET cancelled_at = now()
         WHERE complaint_id = p_complaint AND fired_at IS NULL AND cancelled_at IS NULL
           AND (p_kinds IS NULL OR kind = ANY (p_kinds))
        RETURNING 1)
    SELECT count(*)::int FROM u
$$;

-- The resident-facing text of a status change, in the complaint's language.
CREATE FUNCTION aryz_status_text(p_lang text, p_status text, p_ticket text,
                                 p_reason text, p_reopened boolean)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_lang = 'ru' THEN
        CASE WHEN p_reopened THEN 'Заявка №' || p_ticket || ' открыта повторно.'
             WHEN p_status = 'acknowledged' THEN 'Заявка №' || p_ticket || ' принята в работу.'
             WHEN p_status = 'resolved' THEN 'Заявка №' || p_ticket || ' выполнена. Оцените 1-5 или ответьте НЕТ.'
             WHEN p_status = 'closed' THEN 'Заявка №' || p_ticket || ' закрыта. Спасибо!'
             WHEN p_status = 'rejected' THEN 'Заявка №' || p_ticket || ' отклонена: ' || COALESCE(p_reason, '')
        END
    ELSE
        CASE WHEN p_reopened THEN 'Арыз №' || p_ticket || ' кайра ачылды.'
             WHEN p_status = 'acknowledged' THEN 'Арыз №' || p_ticket || ' кабыл алынды, иштелүүдө.'
             WHEN p_status = 'resolved' THEN 'Арыз №' || p_ticket || ' аткарылды. 1-5 баа бериңиз же ЖОК деп жазыңыз.'
             WHEN p_status = 'closed' THEN 'Арыз №' || p_ticket || ' жабылды. Рахмат!'
             WHEN p_status = 'rejected' THEN 'Арыз №' || p_ticket || ' четке кагылды: ' || COALESCE(p_reason, '')
        END
    END
$$;

-- Change the status of a complaint: the one door for every status change
-- after routing.  Returns NULL on success, else 'not_found',
-- 'invalid_transition' or 'window_expired'.  Writes the event, cancels,
-- pauses or re-arms timers, and queues the notifications, all in the
-- caller's transaction.  p_detail may carry "reason" (rejected, required),
-- "duplicate_of" (duplicate, required: a complaint id) and "rating" (1..5,
-- stored when given).
CREATE FUNCTION aryz_transition(p_complaint bigint, p_to text, p_actor text,
                                p_detail jsonb DEFAULT '{}')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c complaint;
    v_reopen boolean;
    v_event bigint;
    v_text text;
    v_payload jsonb;
    v_window int := aryz_setting_int('followup_days', 7);
    v_from text;
    v_dup bigint;
BEGIN
    SELECT * INTO c FROM complaint WHERE id = p_complaint FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    v_from := c.status;
    IF NOT (c.status, p_to) IN (
        ('received', 'triage'), ('received', 'routed'), ('received', 'rejected'),
        ('received', 'duplicate'), ('triage', 'routed'), ('triage', 'rejected'),
        ('routed', 'acknowledged'), ('routed', 'in_progress'), ('routed', 'resolved'),
        ('routed', 'rejected'), ('acknowledged', 'in_progress'),
        ('acknowledged', 'resolved'), ('acknowledged', 'waiting_resident'),
        ('in_progress', 'resolved'), ('in_progress', 'waiting_resident'),
        ('waiting_resident', 'in_progress'), ('waiting_resident', 'resolved'),
        ('resolved', 'closed'), ('resolved', 'routed'), ('closed', 'routed'))
    THEN
        RETURN 'invalid_transition';
    END IF;
    IF p_to IN ('routed', 'acknowledged', 'in_progress', 'resolved')
       AND (c.municipality_soate IS NULL OR c.category_code IS NULL OR c.responsible IS NULL) THEN
        RETURN 'invalid_transition';    -- route it first (aryz-routerd)
    END IF;
    IF p_to = 'rejected' AND COALESCE(p_detail->>'reason', '') = '' THEN
        RETURN 'invalid_transition';
    END IF;
    -- A duplicate names the complaint it duplicates ("duplicate_of": its
    -- id), which must exist and not be a duplicate itself; a rating is 1..5.
    -- Refused with an error word, never raised by a constraint or a cast.
    IF p_to = 'duplicate' THEN
        SELECT d.id INTO v_dup FROM complaint d
         WHERE d.id = CASE WHEN p_detail->>'duplicate_of' ~ '^[0-9]{1,18}$'
                           THEN (p_detail->>'duplicate_of')::bigint END
           AND d.id <> p_complaint AND d.status <> 'duplicate';
        IF v_dup IS NULL THEN
            RETURN 'invalid_transition';
        END IF;
    END IF;
    IF p_detail ? 'rating' AND jsonb_typeof(p_detail->'rating') <> 'null'
       AND NOT COALESCE(p_detail->>'rating' ~ '^[1-5]$', false) THEN
        RETURN 'invalid_transition';
    END IF;
    v_reopen := c.status IN ('resolved', 'closed') AND p_to = 'routed';
    IF v_reopen AND COALESCE(c.resolved_at, c.closed_at) < now() - v_window * interval '1 day' THEN
        RETURN 'window_expired';
    END IF;

    UPDATE complaint SET
        status = p_to,
        updated_at = now(),
        acknowledged_at = CASE WHEN p_to IN ('acknowledged', 'in_progress')
                               THEN COALESCE(acknowledged_at, now()) ELSE acknowledged_at END,
        resolved_at = CASE WHEN p_to = 'resolved' THEN now()
                           WHEN v_reopen THEN NULL ELSE resolved_at END,
        closed_at = CASE WHEN p_to IN ('closed', 'rejected', 'duplicate') THEN now()
                         WHEN v_reopen THEN NULL ELSE closed_at END,
        routed_at = CASE WHEN p_to = 'routed' THEN COALESCE(routed_at, now()) ELSE routed_at END,
        reopen_count = reopen_count + CASE WHEN v_reopen THEN 1 ELSE 0 END,
        priority = priority + CASE WHEN v_reopen THEN 1 ELSE 0 END,
        escalation_level = CASE WHEN v_reopen THEN 0 ELSE escalation_level END,
        reject_reason = CASE WHEN p_to = 'rejected' THEN p_detail->>'reason' ELSE reject_reason END,
        duplicate_of = CASE WHEN p_to = 'duplicate' THEN v_dup ELSE duplicate_of END,
        rating = CASE WHEN p_detail ? 'rating' THEN (p_detail->>'rating')::int ELSE rating END
     WHERE id = p_complaint
    RETURNING * INTO c;

    INSERT INTO complaint_event (complaint_id, kind, from_status, to_status, actor, detail)
    VALUES (p_complaint, CASE WHEN v_reopen THEN 'reopened' ELSE 'status' END,
            v_from, p_to, p_actor, COALESCE(p_detail, '{}'))
    RETURNING id INTO v_event;

    -- Timers.  The first acknowledgement of this generation (straight
    -- from routed) stops the ack clock and the escalation chain; not
    -- "acknowledged_at = now()", which a reopened complaint, acknowledged
    -- in an earlier generation, never meets.
    IF p_to IN ('acknowledged', 'in_progress') AND v_from = 'routed' THEN
        PERFORM aryz_cancel_timers(p_complaint, ARRAY['ack_warn', 'ack_breach', 'escalate']);
    END IF;
    IF p_to = 'waiting_resident' THEN
        -- Pause: keep the remaining working minutes, park the timers.
        UPDATE sla_timer SET paused_minutes = aryz_work_between(c.municipality_soate, now(), due_at),
                             due_at = 'infinity'
         WHERE complaint_id = p_complaint AND fired_at IS NULL AND cancelled_at IS NULL
           AND kind IN ('resolve_warn', 'resolve_breach', 'escalate', 'update');
    ELSIF p_to = 'in_progress' THEN
        -- Resume after waiting for the resident.
        UPDATE sla_timer SET due_at = aryz_work_add(c.municipality_soate, now(), paused_minutes),
                             paused_minutes = NULL
         WHERE complaint_id = p_complaint AND paused_minutes IS NOT NULL
           AND fired_at IS NULL AND cancelled_at IS NULL;
        PERFORM pg_notify('aryz_timer', now()::text);
    ELSIF p_to IN ('resolved', 'closed', 'rejected', 'duplicate') OR v_reopen THEN
        PERFORM aryz_cancel_timers(p_complaint, NULL);
    END IF;
    IF p_to = 'resolved' THEN
        INSERT INTO sla_timer (complaint_id, kind, level, generation, due_at)
        VALUES (p_complaint, 'auto_close', 0, c.reopen_count, now() + v_window * interval '1 day')
        ON CONFLICT (complaint_id, kind, level, generation) DO NOTHING;
        PERFORM pg_notify('aryz_timer', (now() + v_window * interval '1 day')::text);
    END IF;
    IF v_reopen THEN
        PERFORM aryz_arm_sla(p_complaint);
    END IF;

    -- Notifications, idempotent per event.
    IF c.resident_id IS NOT NULL AND (v_reopen OR p_to IN ('acknowledged', 'resolved', 'closed', 'rejected')) THEN
        v_text := aryz_status_text(c.language, p_to, c.ticket, c.reject_reason, v_reopen);
        PERFORM aryz_outbox_sms('status:' || p_complaint || ':' || v_event,
                                (SELECT phone FROM resident WHERE id = c.resident_id),
                                v_text, p_complaint);
    END IF;
    IF c.municipality_soate IS NOT NULL AND c.category_code IS NOT NULL THEN
        v_payload := jsonb_build_object('ticket', c.ticket, 'complaint_id', c.id,
                                        'status', p_to, 'reopened', v_reopen,
                                        'actor', p_actor, 'at', now(),
                                        'municipality', c.municipality_soate,
                                        'category', c.category_code,
                                        'provider_id', c.provider_id,
                                        'priority', c.priority);
        PERFORM aryz_outbox_mqtt('status:' || p_complaint || ':' || v_event || ':muni',
                                 'aryz/v1/' || c.municipality_soate || '/' || c.category_code || '/status',
                                 v_payload, p_complaint);
        IF c.provider_id IS NOT NULL THEN
            PERFORM aryz_outbox_mqtt('status:' || p_complaint || ':' || v_event || ':prov',
                                     'aryz/v1/providers/' || c.provider_id || '/complaints',
                                     v_payload, p_complaint);
        END IF;
        -- A reopened complaint goes back to the provider's dispatcher.
        IF v_reopen AND c.provider_id IS NOT NULL THEN
            PERFORM aryz_outbox_sms('status:' || p_complaint || ':' || v_event || ':disp',
                                    p.dispatcher_phone,
                                    'Reopened #' || c.ticket || ' (priority ' || c.priority || '): '
                                    || left(c.description, 80), p_complaint)
               FROM provider p WHERE p.id = c.provider_id AND p.dispatcher_phone IS NOT NULL;
        END IF;
    END IF;
    RETURN NULL;
END $$;
