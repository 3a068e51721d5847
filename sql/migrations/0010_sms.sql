-- 0010_sms.sql - what aryz-smsd keeps: multipart SMS reassembly, USSD
-- sessions, delivery reports, short-code municipalities, and the SQL
-- functions its ingress and MT worker call.  Each function is one
-- statement from the daemon, so what it writes is one COMMIT.

-- A short code (receiver) that belongs to one municipality: the last
-- fallback when neither the text nor the resident's home names one.
CREATE TABLE sms_shortcode (
    code                text PRIMARY KEY,
    municipality_soate  soate NOT NULL REFERENCES municipality
);

-- Concatenated SMS arriving as separate parts.  One open group per
-- (sender, ref, total); closed when its complaint is created, so a
-- reference number reused later starts a fresh group.
CREATE TABLE sms_concat (
    id            bigserial PRIMARY KEY,
    sender        text NOT NULL,
    receiver      text,
    ref           int NOT NULL CHECK (ref BETWEEN 0 AND 65535),
    total         int NOT NULL CHECK (total BETWEEN 2 AND 255),
    created_at    timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz,
    partial       boolean NOT NULL DEFAULT false,  -- surfaced incomplete
    complaint_id  bigint REFERENCES complaint
);
CREATE UNIQUE INDEX sms_concat_open ON sms_concat (sender, ref, total)
    WHERE closed_at IS NULL;
CREATE INDEX sms_concat_age ON sms_concat (created_at) WHERE closed_at IS NULL;

CREATE TABLE sms_part (
    concat_id   bigint NOT NULL REFERENCES sms_concat,
    seq         int NOT NULL CHECK (seq >= 1),
    inbound_id  bigint NOT NULL UNIQUE REFERENCES inbound_message,
    PRIMARY KEY (concat_id, seq)
);

-- USSD session state: the aggregator resends the whole input path on
-- every callback, so the state is the path plus this snapshot of the
-- resident taken at the first callback (stable across a restart).
CREATE TABLE ussd_session (
    session_id    text PRIMARY KEY,
    phone         e164 NOT NULL,
    service_code  text,
    network_code  text,
    language      text NOT NULL CHECK (language IN ('ky', 'ru')),
    home_soate    soate,
    last_text     text NOT NULL DEFAULT '',
    steps         int NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    complaint_id  bigint REFERENCES complaint
);
CREATE INDEX ussd_session_age ON ussd_session (updated_at);

-- SMS commands and triage answers look up the sender's latest
-- complaints (also closed ones, for a rating or a reopen).
CREATE INDEX complaint_resident_recent ON complaint (resident_id, created_at);

-- Every delivery report Kannel sent, as it came.
CREATE TABLE sms_dlr (
    id          bigserial PRIMARY KEY,
    outbox_id   bigint NOT NULL REFERENCES outbox,
    status      int NOT NULL,
    detail      text,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_dlr_outbox ON sms_dlr (outbox_id);

-- Submit an SMS complaint: aryz_submit_complaint, with the short code's
-- municipality as the last fallback (after the text and the home).
--
-- A resident whose complaint waits in triage was asked by aryz-routerd to
-- name the village (or the problem).  When this message supplies what the
-- triage complaint lacks, it is that answer: stored raw (outcome
-- 'command'), the missing fields filled in, an event written and routing
-- requested again; no second complaint.  Idempotent like the rest.
CREATE FUNCTION aryz_sms_submit(
    p_channel text, p_idem_key text, p_sender text, p_receiver text,
    p_raw bytea, p_body text, p_meta jsonb,
    p_municipality text, p_category text, p_language text, p_description text)
RETURNS TABLE (complaint_id bigint, ticket text, duplicate boolean,
               municipality_soate text)
LANGUAGE plpgsql AS $$
DECLARE
    v_muni text := aryz_current_municipality(NULLIF(p_municipality, ''));
    v_cat text := (SELECT code FROM service_category WHERE code = NULLIF(p_category, ''));
    v_prev inbound_message;
    t complaint;
    v_in bigint;
BEGIN
    SELECT * INTO v_prev FROM inbound_message m
     WHERE m.channel = p_channel AND m.idem_key = p_idem_key;
    IF v_prev.id IS NOT NULL AND v_prev.outcome = 'command' THEN
        RETURN QUERY SELECT c.id, c.ticket, true, c.municipality_soate::text FROM complaint c
                      WHERE c.id = (v_prev.meta->>'complaint_id')::bigint;
        RETURN;
    END IF;
    IF v_prev.id IS NULL THEN
        SELECT * INTO t FROM complaint c
         WHERE c.resident_id = (SELECT r.id FROM resident r WHERE r.phone = p_sender)
           AND c.status = 'triage'
           AND c.created_at > now() - interval '3 days'
         ORDER BY c.created_at DESC LIMIT 1
           FOR UPDATE;
        IF t.id IS NOT NULL AND ((t.municipality_soate IS NULL AND v_muni IS NOT NULL)
                                 OR (t.category_code IS NULL AND v_cat IS NOT NULL)) THEN
            INSERT INTO inbound_message (channel, idem_key, sender, receiver, raw, body, meta, outcome)
            VALUES (p_channel, p_idem_key, p_sender, p_receiver, p_raw, p_body,
                    COALESCE(p_meta, '{}') || jsonb_build_object('command', 'triage_answer',
                                                                 'complaint_id', t.id),
                    'command')
            RETURNING id INTO v_in;
            UPDATE complaint c SET municipality_soate = COALESCE(c.municipality_soate, v_muni),
                                   category_code = COALESCE(c.category_code, v_cat),
                                   description = c.description || E'\n' || COALESCE(p_description, ''),
                                   updated_at = now()
             WHERE c.id = t.id
            RETURNING * INTO t;
            INSERT INTO complaint_event (complaint_id, kind, actor, detail)
            VALUES (t.id, 'resident_answer', p_sender,
                    jsonb_build_object('inbound_id', v_in, 'municipality', t.municipality_soate,
                                       'category', t.category_code));
            PERFORM aryz_route_request(t.id);
            RETURN QUERY SELECT t.id, t.ticket, false, t.municipality_soate::text;
            RETURN;
        END IF;
    END IF;
    IF v_muni IS NULL
       AND NOT EXISTS (SELECT 1 FROM resident r WHERE r.phone = p_sender
                        AND r.home_soate IS NOT NULL) THEN
        SELECT s.municipality_soate INTO v_muni FROM sms_shortcode s
         WHERE s.code = p_receiver;
    END IF;
    RETURN QUERY SELECT * FROM aryz_submit_complaint(
        p_channel, p_idem_key, p_sender, p_receiver, p_raw, p_body, p_meta,
        p_sender, v_muni, v_cat, NULLIF(p_language, ''),
        p_description, NULL, NULL);
END $$;

-- The resident-facing one-line status of a complaint.
CREATE FUNCTION aryz_sms_status_line(p_lang text, c complaint)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_lang = 'ru' THEN
        'Заявка №' || c.ticket || ': ' || CASE c.status
            WHEN 'received' THEN 'принята' WHEN 'triage' THEN 'уточняется адрес'
            WHEN 'routed' THEN 'передана' WHEN 'acknowledged' THEN 'принята в работу'
            WHEN 'in_progress' THEN 'в работе' WHEN 'waiting_resident' THEN 'ждёт вашего ответа'
            WHEN 'resolved' THEN 'выполнена' WHEN 'closed' THEN 'закрыта'
            WHEN 'rejected' THEN 'отклонена' ELSE 'объединена с другой' END
        || COALESCE(' (' || (SELECT p.name FROM provider p WHERE p.id = c.provider_id) || ')', '')
    ELSE
        'Арыз №' || c.ticket || ': ' || CASE c.status
            WHEN 'received' THEN 'кабыл алынды' WHEN 'triage' THEN 'дареги такталууда'
            WHEN 'routed' THEN 'жөнөтүлдү' WHEN 'acknowledged' THEN 'иштелүүдө'
            WHEN 'in_progress' THEN 'иштелүүдө' WHEN 'waiting_resident' THEN 'жообуңузду күтүүдө'
            WHEN 'resolved' THEN 'аткарылды' WHEN 'closed' THEN 'жабылды'
            WHEN 'rejected' THEN 'четке кагылды' ELSE 'башка арызга кошулду' END
        || COALESCE(' (' || (SELECT p.name FROM provider p WHERE p.id = c.provider_id) || ')', '')
    END
$$;

-- An SMS command (OK/DONE/INFO from staff; STATUS, a 1-5 rating, NO from
-- residents).  Stores the raw message (outcome 'command'), applies the
-- change through aryz_transition, queues the reply SMS.  handled = false
-- when the command does not apply (a lone "3" with nothing to rate): the
-- caller then submits the text as a complaint; nothing was written.
CREATE FUNCTION aryz_sms_command(
    p_idem_key text, p_sender text, p_receiver text, p_raw bytea, p_body text,
    p_meta jsonb, p_kind text, p_ticket text, p_rating int)
RETURNS TABLE (handled boolean, duplicate boolean, reply text)
LANGUAGE plpgsql AS $$
DECLARE
    st staff;
    c complaint;
    v_lang text;
    v_err text;
    v_in bigint;
    v_window int := aryz_setting_int('followup_days', 7);
    v_to text;
BEGIN
    handled := true;
    duplicate := false;
    IF EXISTS (SELECT 1 FROM inbound_message m WHERE m.channel = 'sms'
                AND m.idem_key = p_idem_key) THEN
        duplicate := true;
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT * INTO st FROM staff s WHERE s.phone = p_sender;
    SELECT COALESCE((SELECT r.language FROM resident r WHERE r.phone = p_sender),
                    CASE WHEN st.id IS NOT NULL THEN 'ru' ELSE 'ky' END) INTO v_lang;

    IF p_kind IN ('ack', 'done', 'info') THEN
        IF st.id IS NULL THEN
            reply := CASE v_lang WHEN 'ru' THEN 'Этот номер не зарегистрирован как сотрудник.'
                     ELSE 'Бул номер кызматкер катары катталган эмес.' END;
        ELSE
            SELECT * INTO c FROM complaint x WHERE x.ticket = NULLIF(p_ticket, '');
            IF c.id IS NULL THEN
                reply := CASE v_lang WHEN 'ru' THEN 'Заявка №' || COALESCE(p_ticket, '') || ' не найдена.'
                         ELSE 'Арыз №' || COALESCE(p_ticket, '') || ' табылган жок.' END;
            ELSIF NOT (st.role IN ('operator', 'rayon')
                       OR st.provider_id IS NOT DISTINCT FROM c.provider_id AND st.provider_id IS NOT NULL
                       OR st.municipality_soate IS NOT DISTINCT FROM c.municipality_soate
                          AND st.municipality_soate IS NOT NULL) THEN
                reply := CASE v_lang WHEN 'ru' THEN 'Заявка №' || c.ticket || ' вам не назначена.'
                         ELSE 'Арыз №' || c.ticket || ' сизге берилген эмес.' END;
            ELSIF p_kind = 'info' THEN
                reply := aryz_sms_status_line(v_lang, c) || ': ' || left(c.description, 60);
            ELSE
                v_to := CASE p_kind WHEN 'ack' THEN 'acknowledged' ELSE 'resolved' END;
                v_err := aryz_transition(c.id, v_to, 'staff:' || p_sender,
                                         jsonb_build_object('via', 'sms'));
                IF v_err IS NULL THEN
                    reply := CASE v_lang WHEN 'ru' THEN 'Заявка №' || c.ticket || ': ' ||
                                 CASE v_to WHEN 'acknowledged' THEN 'принята' ELSE 'выполнена' END
                             ELSE 'Арыз №' || c.ticket || ': ' ||
                                 CASE v_to WHEN 'acknowledged' THEN 'кабыл алынды' ELSE 'аткарылды' END END;
                ELSE
                    reply := CASE v_lang WHEN 'ru' THEN 'Нельзя: заявка №' || c.ticket || ' в статусе ' || c.status
                             ELSE 'Болбойт: арыз №' || c.ticket || ' абалы ' || c.status END;
                END IF;
            END IF;
        END IF;
    ELSIF p_kind = 'status' THEN
        SELECT * INTO c FROM complaint x
         WHERE x.resident_id = (SELECT r.id FROM resident r WHERE r.phone = p_sender)
           AND (NULLIF(p_ticket, '') IS NULL OR x.ticket = p_ticket)
         ORDER BY x.created_at DESC LIMIT 1;
        IF c.id IS NULL THEN
            reply := CASE v_lang WHEN 'ru' THEN 'Заявка не найдена.' ELSE 'Арыз табылган жок.' END;
        ELSE
            reply := aryz_sms_status_line(v_lang, c);
        END IF;
    ELSIF p_kind IN ('rate', 'reopen') THEN
        SELECT * INTO c FROM complaint x
         WHERE x.resident_id = (SELECT r.id FROM resident r WHERE r.phone = p_sender)
           AND x.status IN ('resolved', 'closed')
           AND (NULLIF(p_ticket, '') IS NULL OR x.ticket = p_ticket)
           AND COALESCE(x.resolved_at, x.closed_at) > now() - v_window * interval '1 day'
           AND (p_kind = 'reopen' OR x.rating IS NULL)
         ORDER BY COALESCE(x.resolved_at, x.closed_at) DESC LIMIT 1;
        IF c.id IS NULL THEN
            handled := false;       -- nothing to rate or reopen: a complaint text
            RETURN NEXT;
            RETURN;
        END IF;
        IF p_kind = 'reopen' THEN
            v_err := aryz_transition(c.id, 'routed', p_sender, jsonb_build_object('via', 'sms'));
            reply := CASE WHEN v_err IS NULL THEN NULL   -- aryz_transition tells the resident
                          WHEN v_lang = 'ru' THEN 'Заявку №' || c.ticket || ' уже нельзя открыть.'
                          ELSE 'Арыз №' || c.ticket || ' кайра ачууга болбойт.' END;
        ELSIF c.status = 'resolved' THEN
            v_err := aryz_transition(c.id, 'closed', p_sender,
                                     jsonb_build_object('via', 'sms', 'rating', p_rating));
        ELSE
            UPDATE complaint SET rating = p_rating, updated_at = now() WHERE id = c.id;
            INSERT INTO complaint_event (complaint_id, kind, actor, detail)
            VALUES (c.id, 'rated', p_sender, jsonb_build_object('rating', p_rating));
            reply := CASE v_lang WHEN 'ru' THEN 'Спасибо за оценку!' ELSE 'Бааңыз үчүн рахмат!' END;
        END IF;
    ELSE
        handled := false;
        RETURN NEXT;
        RETURN;
    END IF;

    INSERT INTO inbound_message (channel, idem_key, sender, receiver, raw, body, meta, outcome)
    VALUES ('sms', p_idem_key, p_sender, p_receiver, p_raw, p_body,
            COALESCE(p_meta, '{}') || jsonb_build_object('command', p_kind, 'ticket', p_ticket,
                                                         'complaint_id', c.id, 'error', v_err),
            'command')
    RETURNING id INTO v_in;
    IF reply IS NOT NULL THEN
        PERFORM aryz_outbox_sms('reply:' || v_in, p_sender, reply, c.id);
    END IF;
    RETURN NEXT;
END $$;

-- The text of a concat group so far, parts in order; a missing part is
-- shown as "[...]".
CREATE FUNCTION aryz_sms_concat_text(p_group bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(COALESCE(m.body, '[...]'), '' ORDER BY g.seq)
      FROM sms_concat c
      CROSS JOIN generate_series(1, c.total) AS g(seq)
      LEFT JOIN sms_part p ON p.concat_id = c.id AND p.seq = g.seq
      LEFT JOIN inbound_message m ON m.id = p.inbound_id
     WHERE c.id = p_group
$$;

-- Store one part of a concatenated SMS (outcome 'part').  complete is
-- true when every part is there and no complaint exists yet; text is then
-- the whole message, which the caller normalizes and passes to
-- aryz_sms_concat_submit.  A redelivered part answers like the first
-- delivery, so a retry after a failed submit completes the group.
CREATE FUNCTION aryz_sms_part(
    p_idem_key text, p_sender text, p_receiver text, p_raw bytea, p_body text,
    p_meta jsonb, p_ref int, p_total int, p_seq int)
RETURNS TABLE (concat_id bigint, duplicate boolean, complete boolean, text text)
LANGUAGE plpgsql AS $$
DECLARE
    v_in bigint;
    v_n int;
    g sms_concat;
BEGIN
    INSERT INTO inbound_message (channel, idem_key, sender, receiver, raw, body, meta, outcome)
    VALUES ('sms', p_idem_key, p_sender, p_receiver, p_raw, p_body,
            COALESCE(p_meta, '{}') || jsonb_build_object('ref', p_ref, 'total', p_total, 'seq', p_seq),
            'part')
    ON CONFLICT (channel, idem_key) DO NOTHING
    RETURNING id INTO v_in;
    duplicate := v_in IS NULL;
    IF duplicate THEN
        SELECT c.* INTO g FROM inbound_message m
          JOIN sms_part p ON p.inbound_id = m.id
          JOIN sms_concat c ON c.id = p.concat_id
         WHERE m.channel = 'sms' AND m.idem_key = p_idem_key
           FOR UPDATE OF c;
    ELSE
        -- A part late for its group, which was surfaced incomplete (and
        -- no new group under that reference is open): it fills the gap
        -- in that complaint rather than opening a group that would be
        -- surfaced as a second complaint.
        SELECT c.* INTO g FROM sms_concat c
         WHERE c.sender = p_sender AND c.ref = p_ref AND c.total = p_total
           AND c.closed_at IS NOT NULL AND c.partial AND c.complaint_id IS NOT NULL
           AND c.created_at > now() - interval '1 day'
           AND NOT EXISTS (SELECT 1 FROM sms_part x WHERE x.concat_id = c.id AND x.seq = p_seq)
           AND NOT EXISTS (SELECT 1 FROM sms_concat o WHERE o.sender = p_sender
                            AND o.ref = p_ref AND o.total = p_total AND o.closed_at IS NULL)
         ORDER BY c.id DESC LIMIT 1
           FOR UPDATE OF c;
        IF g.id IS NOT NULL THEN
            INSERT INTO sms_part (concat_id, seq, inbound_id) VALUES (g.id, p_seq, v_in);
            UPDATE complaint SET description = aryz_sms_concat_text(g.id), updated_at = now()
             WHERE id = g.complaint_id;
            INSERT INTO complaint_event (complaint_id, kind, actor, detail)
            VALUES (g.complaint_id, 'late_part', p_sender,
                    jsonb_build_object('inbound_id', v_in, 'seq', p_seq, 'total', p_total));
            concat_id := g.id;
            complete := false;
            RETURN NEXT;
            RETURN;
        END IF;
        INSERT INTO sms_concat (sender, receiver, ref, total)
        VALUES (p_sender, p_receiver, p_ref, p_total)
        ON CONFLICT (sender, ref, total) WHERE closed_at IS NULL DO NOTHING;
        -- Serialises the parts of one group: the last one sees them all.
        SELECT c.* INTO g FROM sms_concat c
         WHERE c.sender = p_sender AND c.ref = p_ref AND c.total = p_total
           AND c.closed_at IS NULL
           FOR UPDATE;
        INSERT INTO sms_part (concat_id, seq, inbound_id)
        VALUES (g.id, p_seq, v_in)
        ON CONFLICT DO NOTHING;     -- the same part again under a new id
    END IF;
    concat_id := g.id;
    SELECT count(*) INTO v_n FROM sms_part p WHERE p.concat_id = g.id;
    complete := g.id IS NOT NULL AND g.closed_at IS NULL AND v_n = g.total;
    IF complete THEN
        text := aryz_sms_concat_text(g.id);
    END IF;
    RETURN NEXT;
END $$;

-- Create the complaint of a concat group (complete, or surfaced partial
-- after the configured age) and close the group.  Idempotent.
CREATE FUNCTION aryz_sms_concat_submit(
    p_group bigint, p_municipality text, p_category text, p_language text,
    p_description text, p_partial boolean)
RETURNS TABLE (complaint_id bigint, ticket text, duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
    g sms_concat;
    v_raw bytea;
    v_meta jsonb;
    r record;
BEGIN
    SELECT * INTO g FROM sms_concat c WHERE c.id = p_group FOR UPDATE;
    IF g.id IS NULL THEN
        RETURN;
    END IF;
    IF g.closed_at IS NOT NULL THEN
        RETURN QUERY SELECT g.complaint_id, c.ticket, true FROM complaint c
                      WHERE c.id = g.complaint_id;
        RETURN;
    END IF;
    SELECT string_agg(m.raw, ''::bytea ORDER BY p.seq),
           jsonb_build_object('concat', jsonb_build_object(
               'ref', g.ref, 'total', g.total, 'partial', p_partial,
               'parts', jsonb_agg(jsonb_build_object('seq', p.seq, 'inbound_id', m.id,
                                                     'idem_key', m.idem_key) ORDER BY p.seq)))
      INTO v_raw, v_meta
      FROM sms_part p JOIN inbound_message m ON m.id = p.inbound_id
     WHERE p.concat_id = g.id;
    SELECT * INTO r FROM aryz_sms_submit('sms', 'concat:' || g.id, g.sender, g.receiver,
                                         v_raw, aryz_sms_concat_text(g.id), v_meta,
                                         p_municipality, p_category, p_language,
                                         p_description);
    UPDATE sms_concat SET closed_at = now(), partial = p_partial, complaint_id = r.complaint_id
     WHERE id = g.id;
    complaint_id := r.complaint_id;
    ticket := r.ticket;
    duplicate := r.duplicate;
    RETURN NEXT;
END $$;

-- Groups the sweeper must finish: complete but without a complaint (the
-- daemon died between the last part and the submit), or incomplete and
-- older than p_max_age seconds (surfaced as a complaint with what came).
CREATE FUNCTION aryz_sms_concat_due(p_max_age int, p_limit int)
RETURNS TABLE (concat_id bigint, partial boolean, text text)
LANGUAGE sql STABLE AS $$
    SELECT c.id, n.n < c.total, aryz_sms_concat_text(c.id)
      FROM sms_concat c
      CROSS JOIN LATERAL (SELECT count(*) AS n FROM sms_part p WHERE p.concat_id = c.id) n
     WHERE c.closed_at IS NULL
       AND (n.n = c.total OR c.created_at < now() - p_max_age * interval '1 second')
     ORDER BY c.id LIMIT p_limit
$$;

-- USSD: create or refresh the session; the first callback snapshots the
-- resident's language and home.  An aggregator may reuse a session id
-- (after its own restart, or once our row has expired): a callback from
-- another phone, or a first callback (empty path) after the session
-- ended, starts a new session under that id, with created_at now.
CREATE FUNCTION aryz_ussd_touch(p_session text, p_phone text, p_service text,
                                p_network text, p_text text)
RETURNS TABLE (language text, home_soate text, finished boolean, complaint_ticket text)
LANGUAGE plpgsql AS $$
DECLARE
    s ussd_session;
BEGIN
    INSERT INTO ussd_session AS u (session_id, phone, service_code, network_code, language,
                                   home_soate, last_text, steps)
    SELECT p_session, p_phone, p_service, p_network, COALESCE(r.language, 'ky'),
           aryz_current_municipality(r.home_soate), p_text, 1
      FROM (SELECT NULL) x LEFT JOIN resident r ON r.phone = p_phone
    ON CONFLICT (session_id) DO UPDATE
       SET last_text = EXCLUDED.last_text, steps = u.steps + 1, updated_at = now()
     WHERE u.phone = EXCLUDED.phone AND NOT (u.finished_at IS NOT NULL AND p_text = '')
    RETURNING * INTO s;
    IF s.session_id IS NULL THEN        -- a new session under a reused id
        UPDATE ussd_session u
           SET phone = x.phone, service_code = x.service_code,
               network_code = x.network_code, language = x.language,
               home_soate = x.home_soate, last_text = p_text, steps = 1,
               created_at = now(), updated_at = now(), finished_at = NULL,
               complaint_id = NULL
          FROM (SELECT p_phone::e164 AS phone, p_service AS service_code,
                       p_network AS network_code, COALESCE(r.language, 'ky') AS language,
                       aryz_current_municipality(r.home_soate) AS home_soate
                  FROM (SELECT NULL) z LEFT JOIN resident r ON r.phone = p_phone) x
         WHERE u.session_id = p_session
        RETURNING u.* INTO s;
    END IF;
    language := s.language;
    home_soate := s.home_soate;
    finished := s.finished_at IS NOT NULL;
    SELECT c.ticket INTO complaint_ticket FROM complaint c WHERE c.id = s.complaint_id;
    RETURN NEXT;
END $$;

-- The idempotency key of a USSD step: 'ussd:<session>:<step>', unless
-- that key was used by an earlier session under the same id (stored
-- before this session began): then the session's start is added.
CREATE FUNCTION aryz_ussd_key(p_session text, p_step int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_key text := 'ussd:' || p_session || ':' || p_step;
    v_start timestamptz := (SELECT u.created_at FROM ussd_session u
                             WHERE u.session_id = p_session);
BEGIN
    IF EXISTS (SELECT 1 FROM inbound_message m WHERE m.channel = 'ussd'
                AND m.idem_key = v_key AND m.received_at < v_start) THEN
        v_key := v_key || '@' || floor(extract(epoch FROM v_start) * 1000000)::bigint;
    END IF;
    RETURN v_key;
END $$;

-- USSD: the confirmed complaint.  Idempotent on session id + step.
CREATE FUNCTION aryz_ussd_submit(p_session text, p_step int, p_phone text, p_service text,
                                 p_path text, p_municipality text, p_category text,
                                 p_language text, p_description text)
RETURNS TABLE (complaint_id bigint, ticket text, duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM aryz_submit_complaint(
        'ussd', aryz_ussd_key(p_session, p_step), p_phone, p_service,
        convert_to(p_path, 'UTF8'), p_description,
        jsonb_build_object('session_id', p_session, 'step', p_step, 'path', p_path),
        p_phone, p_municipality, p_category, p_language, p_description, NULL, NULL);
    UPDATE ussd_session SET finished_at = COALESCE(finished_at, now()),
                            complaint_id = COALESCE(ussd_session.complaint_id, r.complaint_id)
     WHERE session_id = p_session;
    complaint_id := r.complaint_id;
    ticket := r.ticket;
    duplicate := r.duplicate;
    RETURN NEXT;
END $$;

-- USSD: remember the resident's language and/or home municipality.
CREATE FUNCTION aryz_ussd_set(p_session text, p_step int, p_phone text, p_service text,
                              p_path text, p_language text, p_home text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_res bigint;
    v_dup boolean;
BEGIN
    SELECT s.duplicate INTO v_dup FROM aryz_store_inbound(
        'ussd', aryz_ussd_key(p_session, p_step), p_phone, p_service,
        convert_to(p_path, 'UTF8'), p_path,
        jsonb_build_object('session_id', p_session, 'step', p_step,
                           'language', p_language, 'home', p_home),
        'session', NULL) s;
    IF v_dup THEN
        RETURN false;
    END IF;
    v_res := aryz_resident(p_phone, p_language);
    UPDATE resident SET language = COALESCE(NULLIF(p_language, ''), language),
                        home_soate = COALESCE(NULLIF(p_home, ''), home_soate),
                        updated_at = now()
     WHERE id = v_res;
    UPDATE ussd_session SET finished_at = COALESCE(finished_at, now())
     WHERE session_id = p_session;
    RETURN true;
END $$;

-- USSD: the status of one of the caller's tickets, in p_lang.
CREATE FUNCTION aryz_ussd_status(p_phone text, p_ticket text, p_lang text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        (SELECT aryz_sms_status_line(p_lang, c) FROM complaint c
          WHERE c.ticket = p_ticket AND c.reporter = p_phone),
        CASE WHEN p_lang = 'ru' THEN 'Заявка №' || p_ticket || ' не найдена.'
             ELSE 'Арыз №' || p_ticket || ' табылган жок.' END)
$$;

-- MT: claim up to p_batch pending SMS, leasing them for p_lease seconds.
CREATE FUNCTION aryz_sms_claim(p_batch int, p_lease int)
RETURNS TABLE (id bigint, recipient text, body text, attempts int)
LANGUAGE sql AS $$
    UPDATE outbox o SET locked_until = now() + p_lease * interval '1 second',
                        attempts = o.attempts + 1
     WHERE o.id IN (SELECT x.id FROM outbox x
                     WHERE x.channel = 'sms' AND x.status = 'pending'
                       AND x.next_attempt_at <= now()
                       AND (x.locked_until IS NULL OR x.locked_until < now())
                     ORDER BY x.next_attempt_at, x.id
                     LIMIT p_batch FOR UPDATE SKIP LOCKED)
    RETURNING o.id, o.recipient, o.body, o.attempts
$$;

-- MT: Kannel accepted the message.
CREATE FUNCTION aryz_sms_sent(p_id bigint, p_ref text) RETURNS void
LANGUAGE sql AS $$
    UPDATE outbox SET status = 'sent', sent_at = now(), locked_until = NULL,
                      provider_ref = p_ref, last_error = NULL
     WHERE id = p_id AND status = 'pending'
$$;

-- MT: the attempt failed; retry after an exponential backoff with
-- jitter, or give up ('dead') after p_max attempts.  Returns the status.
CREATE FUNCTION aryz_sms_failed(p_id bigint, p_error text, p_max int,
                                p_backoff_min int, p_backoff_max int)
RETURNS text LANGUAGE sql AS $$
    UPDATE outbox SET
        last_error = left(p_error, 500),
        locked_until = NULL,
        status = CASE WHEN attempts >= p_max THEN 'dead' ELSE 'pending' END,
        next_attempt_at = now() + least(p_backoff_max,
                              p_backoff_min * power(2, greatest(attempts - 1, 0)))
                              * (0.75 + random() * 0.5) * interval '1 second'
     WHERE id = p_id AND status = 'pending'
    RETURNING status
$$;

-- DLR: record a delivery report (Kannel %d: 1 delivered, 2 failed,
-- 4 buffered, 8 accepted by the SMSC, 16 rejected by the SMSC).  Returns
-- false when the outbox id is unknown.
CREATE FUNCTION aryz_sms_dlr(p_outbox bigint, p_status int, p_detail text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM outbox WHERE id = p_outbox AND channel = 'sms') THEN
        RETURN false;
    END IF;
    INSERT INTO sms_dlr (outbox_id, status, detail) VALUES (p_outbox, p_status, p_detail);
    IF p_status & 1 = 1 THEN
        UPDATE outbox SET status = 'delivered', delivered_at = COALESCE(delivered_at, now())
         WHERE id = p_outbox AND status IN ('pending', 'sent', 'failed');
    ELSIF p_status & 18 <> 0 THEN
        UPDATE outbox SET status = 'failed', last_error = 'dlr ' || p_status || ': ' || COALESCE(p_detail, '')
         WHERE id = p_outbox AND status IN ('pending', 'sent');
    END IF;
    RETURN true;
END $$;
