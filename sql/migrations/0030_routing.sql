-- 0030_routing.sql - what aryz-routerd runs: claim route jobs from the
-- queue and route each complaint (triage, "me too" duplicate, or routed to
-- the provider under contract or to the municipality's own service desk),
-- all inside the claiming transaction.  See docs/queue.md.
--
-- Needs 0004_lifecycle.sql (aryz_setting, aryz_setting_int, aryz_arm_sla).

-- Retry schedule of a failing route job: base * 2^attempts, capped, with
-- jitter.  max_job_attempts (0004) decides when it becomes a dead letter.
-- route_lock_timeout_ms bounds how long one job waits for a row lock
-- (say, staff editing the complaint in a long transaction): it then fails
-- like any error and is retried, instead of stalling the whole batch.
INSERT INTO aryz_setting (key, value) VALUES
    ('route_retry_base_ms', '5000'),
    ('route_retry_max_ms', '900000'),
    ('route_lock_timeout_ms', '5000')
ON CONFLICT (key) DO NOTHING;

-- head || name || tail in at most p_max characters when possible: the
-- name (provider or municipality) is shortened with an ellipsis, never
-- the head (which carries the ticket number).  Cyrillic SMS are UCS-2:
-- 70 characters fit one message.
CREATE FUNCTION aryz_sms_fit(p_head text, p_name text, p_tail text, p_max int)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN length(p_head || p_name || p_tail) <= p_max THEN p_head || p_name || p_tail
        WHEN p_max - length(p_head) - length(p_tail) >= 4
            THEN p_head || left(p_name, p_max - length(p_head) - length(p_tail) - 1) || '…' || p_tail
        ELSE p_head || p_name || p_tail
    END
$$;

-- The resident-facing texts of routing, in Kyrgyz or Russian.
--   routed_provider: p_name is the provider
--   routed_municipality / routed_city: p_name is the municipality (an aiyl
--     aimak's service desk, or a town's or city's mayor's office)
--   duplicate: p_ticket is the ticket the report was added to
--   triage_place / triage_problem / triage_both: what we need to know
-- Every text fits one UCS-2 SMS (70) for names of up to 22 characters
-- (all of today's reference data) and 5-digit tickets.
CREATE FUNCTION aryz_route_text(p_kind text, p_lang text, p_ticket text, p_name text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_lang = 'ru' THEN
        CASE p_kind
        WHEN 'routed_provider' THEN
            aryz_sms_fit('Заявка №' || p_ticket || ' принята, исполнитель: ', p_name, '', 70)
        WHEN 'routed_municipality' THEN
            aryz_sms_fit('Заявка №' || p_ticket || ' принята, передана в службу: ', p_name, ' а/о', 70)
        WHEN 'routed_city' THEN
            aryz_sms_fit('Заявка №' || p_ticket || ' принята, передана в мэрию: ', p_name, '', 70)
        WHEN 'duplicate' THEN
            'Ваше сообщение добавлено к заявке №' || p_ticket || '.'
        WHEN 'triage_place' THEN
            'Заявка №' || p_ticket || ' получена. Напишите, в каком вы селе.'
        WHEN 'triage_problem' THEN
            'Заявка №' || p_ticket || ' получена. Опишите проблему: мусор, свет, вода...'
        WHEN 'triage_both' THEN
            'Заявка №' || p_ticket || ' получена. Напишите ваше село и проблему.'
        END
    ELSE
        CASE p_kind
        WHEN 'routed_provider' THEN
            aryz_sms_fit('Арыз №' || p_ticket || ' кабыл алынды, аткаруучу: ', p_name, '', 70)
        WHEN 'routed_municipality' THEN
            aryz_sms_fit('Арыз №' || p_ticket || ' алынды, ', p_name, ' а/ө кызматына жөнөтүлдү', 70)
        WHEN 'routed_city' THEN
            aryz_sms_fit('Арыз №' || p_ticket || ' алынды, ', p_name, ' мэриясына жөнөтүлдү', 70)
        WHEN 'duplicate' THEN
            'Билдирүүңүз №' || p_ticket || ' арызга кошулду.'
        WHEN 'triage_place' THEN
            'Арыз №' || p_ticket || ' алынды. Айылыңыздын атын жазыңыз.'
        WHEN 'triage_problem' THEN
            'Арыз №' || p_ticket || ' алынды. Көйгөйдү жазыңыз: таштанды, жарык, суу...'
        WHEN 'triage_both' THEN
            'Арыз №' || p_ticket || ' алынды. Айылыңызды жана көйгөйдү жазыңыз.'
        END
    END
$$;

-- The municipality as residents read it in an SMS ("Сузак", "Каракол";
-- the kind goes into the sentence, see aryz_route_text).
CREATE FUNCTION aryz_muni_name(m municipality, p_lang text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_lang = 'ru' THEN m.name_ru
                ELSE regexp_replace(COALESCE(m.name_ky, m.name_ru), ' шаары$', '') END
$$;

-- The municipality's service desk as staff read it ("Сузакский а/о").
CREATE FUNCTION aryz_desk_name(m municipality) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT m.name_ru || CASE m.kind WHEN 'aiyl_aimak' THEN ' а/о' ELSE ' (мэрия)' END
$$;

-- Route one complaint; called by aryz_route_batch inside the claiming
-- transaction.  Returns what happened: 'routed', 'triage', 'duplicate',
-- or 'skipped' (not waiting for routing: already routed by an earlier
-- attempt, or handled by staff).  Raises when the complaint does not
-- exist, so the job is retried and then dead-lettered.
--
-- A complaint in 'triage' is routed again when its job comes back (see
-- aryz_route_request) once staff have filled in the municipality and
-- the category; while they are still missing nothing happens.
CREATE FUNCTION aryz_route_complaint(p_complaint bigint, p_actor text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c complaint;
    o complaint;
    m municipality;
    ct contract;
    pv provider;
    cat service_category;
    v_phone text;
    v_from text;
    v_day date;
    v_window int;
    v_kind text;
    v_payload jsonb;
    v_staff text;
BEGIN
    -- NO KEY UPDATE: foreign keys pointing here (events, outbox rows of
    -- another worker's duplicate) take KEY SHARE and must not wait on us.
    SELECT * INTO c FROM complaint WHERE id = p_complaint FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'complaint % not found', p_complaint
            USING ERRCODE = 'no_data_found';
    END IF;
    IF c.status NOT IN ('received', 'triage') THEN
        RETURN 'skipped';
    END IF;
    v_from := c.status;
    IF c.resident_id IS NOT NULL THEN
        SELECT phone INTO v_phone FROM resident WHERE id = c.resident_id;
    END IF;

    -- Triage: we do not know where, or what.  Nothing is dropped: staff
    -- see it, and the resident is asked for what is missing.
    IF c.municipality_soate IS NULL OR c.category_code IS NULL THEN
        IF c.status = 'triage' THEN
            RETURN 'skipped';
        END IF;
        v_kind := CASE WHEN c.municipality_soate IS NULL AND c.category_code IS NULL
                       THEN 'triage_both'
                       WHEN c.municipality_soate IS NULL THEN 'triage_place'
                       ELSE 'triage_problem' END;
        UPDATE complaint SET status = 'triage', updated_at = now() WHERE id = c.id;
        INSERT INTO complaint_event (complaint_id, kind, from_status, to_status, actor, detail)
        VALUES (c.id, 'status', v_from, 'triage', p_actor,
                jsonb_build_object('missing', CASE v_kind
                    WHEN 'triage_both' THEN '["municipality","category"]'::jsonb
                    WHEN 'triage_place' THEN '["municipality"]'::jsonb
                    ELSE '["category"]'::jsonb END));
        IF v_phone IS NOT NULL THEN
            PERFORM aryz_outbox_sms('triage:' || c.id || ':resident', v_phone,
                                    aryz_route_text(v_kind, c.language, c.ticket, NULL), c.id);
        END IF;
        RETURN 'triage';
    END IF;

    -- "Me too": the same resident already has an open complaint about the
    -- same service in the same place.  Link to the oldest one.  Only lower
    -- ids qualify, so two complaints can never point at each other, and
    -- a 'received' one not yet routed (maybe by another worker right now)
    -- counts as open.
    IF c.resident_id IS NOT NULL THEN
        v_window := aryz_setting_int('duplicate_window_hours', 72);
        SELECT * INTO o FROM complaint x
         WHERE x.resident_id = c.resident_id
           AND x.category_code = c.category_code
           AND x.municipality_soate = c.municipality_soate
           AND x.status NOT IN ('closed', 'rejected', 'duplicate', 'resolved')
           AND x.created_at >= c.created_at - v_window * interval '1 hour'
           AND x.id < c.id
         ORDER BY x.id
         LIMIT 1;
        IF FOUND THEN
            UPDATE complaint SET status = 'duplicate', duplicate_of = o.id,
                                 closed_at = now(), updated_at = now()
             WHERE id = c.id;
            INSERT INTO complaint_event (complaint_id, kind, from_status, to_status, actor, detail)
            VALUES (c.id, 'status', v_from, 'duplicate', p_actor,
                    jsonb_build_object('duplicate_of', o.id, 'ticket', o.ticket)),
                   (o.id, 'duplicate', NULL, NULL, p_actor,
                    jsonb_build_object('complaint_id', c.id, 'ticket', c.ticket,
                                       'description', c.description));
            PERFORM aryz_outbox_sms('duplicate:' || c.id || ':resident', v_phone,
                                    aryz_route_text('duplicate', c.language, o.ticket, NULL), c.id);
            RETURN 'duplicate';
        END IF;
    END IF;

    -- The contract in force on the day the complaint was made (local date
    -- of the municipality), not today: a contract that ended since still
    -- owns it.  The exclusion constraint on contract makes it unique.
    SELECT * INTO m FROM municipality WHERE soate = c.municipality_soate;
    SELECT * INTO cat FROM service_category WHERE code = c.category_code;
    v_day := (c.created_at AT TIME ZONE
              COALESCE((SELECT timezone FROM work_calendar WHERE id = m.calendar_id),
                       'Asia/Bishkek'))::date;
    SELECT * INTO ct FROM contract
     WHERE municipality_soate = c.municipality_soate
       AND category_code = c.category_code
       AND valid_from <= v_day AND (valid_to IS NULL OR valid_to > v_day);
    IF FOUND THEN
        SELECT * INTO pv FROM provider WHERE id = ct.provider_id;
    END IF;

    UPDATE complaint SET status = 'routed',
                         provider_id = ct.provider_id,
                         contract_id = ct.id,
                         responsible = CASE WHEN ct.id IS NULL THEN 'municipality'
                                            ELSE 'provider' END,
                         routed_at = now(), updated_at = now()
     WHERE id = c.id
    RETURNING * INTO c;
    INSERT INTO complaint_event (complaint_id, kind, from_status, to_status, actor, detail)
    VALUES (c.id, 'status', v_from, 'routed', p_actor,
            jsonb_build_object('responsible', c.responsible, 'provider_id', c.provider_id,
                               'contract_id', c.contract_id, 'contract_day', v_day));
    PERFORM aryz_arm_sla(c.id);

    -- Side effects, delivered by aryz-smsd and aryz-mqttd.  Idempotent
    -- keys: a retried or reopened route never sends twice.
    IF v_phone IS NOT NULL THEN
        PERFORM aryz_outbox_sms('route:' || c.id || ':resident', v_phone,
            CASE WHEN c.responsible = 'provider'
                 THEN aryz_route_text('routed_provider', c.language, c.ticket, pv.name)
                 ELSE aryz_route_text(CASE m.kind WHEN 'aiyl_aimak' THEN 'routed_municipality'
                                                  ELSE 'routed_city' END,
                                      c.language, c.ticket, aryz_muni_name(m, c.language)) END,
            c.id);
    END IF;
    v_payload := jsonb_build_object(
        'ticket', c.ticket, 'complaint_id', c.id, 'status', c.status,
        'municipality', c.municipality_soate, 'municipality_name', m.name_ru,
        'category', c.category_code, 'responsible', c.responsible,
        'provider_id', c.provider_id, 'contract_id', c.contract_id,
        'channel', c.channel, 'language', c.language,
        'description', c.description, 'lat', c.geo_lat, 'lon', c.geo_lon,
        'priority', c.priority, 'created_at', c.created_at, 'routed_at', c.routed_at);
    -- Staff text (Russian, up to two UCS-2 parts): what, where, and how
    -- to acknowledge it by SMS.
    v_staff := aryz_sms_fit('Заявка ' || c.ticket || ': ' || cat.name_ru || ', '
                            || aryz_desk_name(m) || '. ',
                            c.description, '. Ответ: OK ' || c.ticket, 134);
    IF c.responsible = 'provider' THEN
        PERFORM aryz_outbox_mqtt('route:' || c.id || ':provider',
                                 'aryz/v1/providers/' || c.provider_id || '/complaints',
                                 v_payload, c.id);
        IF pv.dispatcher_phone IS NOT NULL THEN
            PERFORM aryz_outbox_sms('route:' || c.id || ':provider-sms',
                                    pv.dispatcher_phone, v_staff, c.id);
        END IF;
    ELSIF m.service_phone IS NOT NULL THEN
        PERFORM aryz_outbox_sms('route:' || c.id || ':municipality-sms',
                                m.service_phone, v_staff, c.id);
    END IF;
    PERFORM aryz_outbox_mqtt('route:' || c.id || ':municipality',
                             'aryz/v1/' || c.municipality_soate || '/' || c.category_code
                             || '/routed', v_payload, c.id);
    RETURN 'routed';
END $$;

-- Claim up to p_limit due route jobs (FOR UPDATE SKIP LOCKED through the
-- job_claim index, so concurrent workers take disjoint sets) and route
-- each in its own subtransaction: one bad job cannot block the batch.
-- Success deletes the job; failure records the error and reschedules it
-- with exponential backoff and jitter, or moves it to dead_letter after
-- max_job_attempts.  Everything commits with the caller's statement.
--
-- Returns one row: claimed, routed (incl. triage/duplicate/skipped),
-- retried, dead, and next_due_ms: milliseconds until the earliest route
-- job is due (<= 0: due now, e.g. held by another worker; NULL: none).
--
-- Keep p_limit at 64 or below: each job is a subtransaction, and a
-- transaction with more than 64 subtransaction ids overflows the
-- per-backend cache and slows every snapshot in the cluster.
CREATE FUNCTION aryz_route_batch(p_limit int, p_worker text)
RETURNS TABLE (claimed int, routed int, retried int, dead int, next_due_ms bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
    v_id bigint;
    j job;
    v_max int := aryz_setting_int('max_job_attempts', 8);
    v_base int := aryz_setting_int('route_retry_base_ms', 5000);
    v_cap int := aryz_setting_int('route_retry_max_ms', 900000);
    v_err text;
    v_delay double precision;
BEGIN
    claimed := 0; routed := 0; retried := 0; dead := 0;
    PERFORM set_config('lock_timeout',
                       aryz_setting_int('route_lock_timeout_ms', 5000) || 'ms', true);
    SELECT array_agg(s.id ORDER BY s.run_at, s.id) INTO v_ids
      FROM (SELECT q.id, q.run_at FROM job q
             WHERE q.kind = 'route' AND q.run_at <= now()
             ORDER BY q.run_at, q.id
             LIMIT p_limit
             FOR UPDATE SKIP LOCKED) s;

    FOREACH v_id IN ARRAY COALESCE(v_ids, '{}') LOOP
        SELECT * INTO j FROM job WHERE id = v_id;
        claimed := claimed + 1;
        BEGIN
            IF (j.payload->>'complaint_id') IS NULL THEN
                RAISE EXCEPTION 'route job % has no complaint_id', j.id;
            END IF;
            PERFORM aryz_route_complaint((j.payload->>'complaint_id')::bigint, p_worker);
            DELETE FROM job WHERE id = j.id;
            routed := routed + 1;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
            v_err := SQLSTATE || ': ' || v_err;
            IF j.attempts + 1 >= v_max THEN
                INSERT INTO dead_letter (job_id, kind, dedup_key, payload, attempts,
                                         last_error, created_at)
                VALUES (j.id, j.kind, j.dedup_key, j.payload, j.attempts + 1, v_err,
                        j.created_at);
                DELETE FROM job WHERE id = j.id;
                dead := dead + 1;
            ELSE
                -- base * 2^attempts, capped, times 0.75..1.25.
                v_delay := least(v_base * power(2, least(j.attempts, 30)), v_cap)
                           * (0.75 + random() / 2);
                UPDATE job SET attempts = attempts + 1, last_error = v_err,
                               run_at = now() + v_delay * interval '1 millisecond'
                 WHERE id = j.id;
                retried := retried + 1;
            END IF;
        END;
    END LOOP;

    SELECT (extract(epoch FROM min(q.run_at) - clock_timestamp()) * 1000)::bigint
      INTO next_due_ms FROM job q WHERE q.kind = 'route';
    RETURN NEXT;
END $$;

-- Ask for (another) routing of a complaint, e.g. after staff filled in
-- the municipality and category of a complaint in triage.  Idempotent
-- while a route job for it is queued.
CREATE FUNCTION aryz_route_request(p_complaint bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job (kind, dedup_key, payload)
    VALUES ('route', 'route:' || p_complaint,
            jsonb_build_object('complaint_id', p_complaint))
    ON CONFLICT (dedup_key) DO NOTHING;
    PERFORM pg_notify('aryz_job', 'route');
END $$;

-- Staff complete a complaint in triage: where and what.  Sets the
-- municipality (its current successor, if it was merged) and the
-- category, records who did it, and queues routing; aryz-routerd then
-- routes it like a new one (contract at the complaint's date, "me too",
-- SLA, notifications).  Returns NULL on success, else 'not_found',
-- 'invalid_transition' (not in triage), 'unknown_municipality' or
-- 'unknown_category'.
CREATE FUNCTION aryz_triage_resolve(p_complaint bigint, p_soate text, p_category text,
                                    p_actor text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c complaint;
    v_muni text := aryz_current_municipality(p_soate);
BEGIN
    SELECT * INTO c FROM complaint WHERE id = p_complaint FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    IF c.status <> 'triage' THEN
        RETURN 'invalid_transition';
    END IF;
    IF v_muni IS NULL THEN
        RETURN 'unknown_municipality';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM service_category WHERE code = p_category) THEN
        RETURN 'unknown_category';
    END IF;
    UPDATE complaint SET municipality_soate = v_muni, category_code = p_category,
                         updated_at = now()
     WHERE id = p_complaint;
    INSERT INTO complaint_event (complaint_id, kind, actor, detail)
    VALUES (p_complaint, 'triage_resolved', p_actor,
            jsonb_build_object('municipality', v_muni, 'category', p_category,
                               'was_municipality', c.municipality_soate,
                               'was_category', c.category_code));
    PERFORM aryz_route_request(p_complaint);
    RETURN NULL;
END $$;
