-- 0003_ingest.sql - the functions every ingress calls.  Each runs as one
-- statement, so what it writes is one COMMIT: the raw message, the
-- resident, the complaint, its first event and its route job together.

-- The municipality a code refers to today: itself if current, else its
-- successor after a reform; NULL if unknown.
CREATE FUNCTION aryz_current_municipality(p_soate text) RETURNS text
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE chain(soate, depth) AS (
        SELECT m.soate, 0 FROM municipality m WHERE m.soate = p_soate
        UNION ALL
        SELECT s.new_soate, c.depth + 1
          FROM chain c JOIN municipality_succession s ON s.old_soate = c.soate
         WHERE s.effective <= current_date AND c.depth < 10)
    SELECT c.soate FROM chain c JOIN municipality m USING (soate)
     WHERE m.valid_to IS NULL OR m.valid_to > current_date
     ORDER BY c.depth DESC LIMIT 1
$$;

-- Find or create the resident with this phone; returns its id.
CREATE FUNCTION aryz_resident(p_phone text, p_language text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_id bigint;
BEGIN
    INSERT INTO resident (phone, language)
    VALUES (p_phone, COALESCE(p_language, 'ky'))
    ON CONFLICT (phone) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM resident WHERE phone = p_phone;
    END IF;
    RETURN v_id;
END $$;

-- Store a raw message that produced no complaint (rejected, a command, a
-- multipart fragment, a USSD step).  Returns (id, duplicate).
CREATE FUNCTION aryz_store_inbound(
    p_channel text, p_idem_key text, p_sender text, p_receiver text,
    p_raw bytea, p_body text, p_meta jsonb, p_outcome text, p_error text)
RETURNS TABLE (inbound_id bigint, duplicate boolean)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbound_message (channel, idem_key, sender, receiver, raw, body,
                                 meta, outcome, error)
    VALUES (p_channel, p_idem_key, p_sender, p_receiver, p_raw, p_body,
            COALESCE(p_meta, '{}'), p_outcome, p_error)
    ON CONFLICT (channel, idem_key) DO NOTHING
    RETURNING id INTO inbound_id;
    duplicate := inbound_id IS NULL;
    IF duplicate THEN
        SELECT m.id INTO inbound_id FROM inbound_message m
         WHERE m.channel = p_channel AND m.idem_key = p_idem_key;
    END IF;
    RETURN NEXT;
END $$;

-- Accept one complaint.  Duplicate delivery (same channel + idem_key)
-- returns the complaint created the first time, with duplicate = true,
-- and writes nothing.  An unknown or missing municipality or category is
-- kept as NULL: aryz-routerd puts such a complaint into triage.
CREATE FUNCTION aryz_submit_complaint(
    p_channel text, p_idem_key text, p_sender text, p_receiver text,
    p_raw bytea, p_body text, p_meta jsonb,
    p_resident_phone text,      -- NULL for devices
    p_municipality text, p_category text, p_language text,
    p_description text, p_lat double precision, p_lon double precision)
RETURNS TABLE (complaint_id bigint, ticket text, duplicate boolean,
               municipality_soate text)
LANGUAGE plpgsql AS $$
DECLARE
    v_in bigint;
    v_res bigint;
    v_muni text;
    v_lang text := CASE WHEN p_language IN ('ky', 'ru') THEN p_language END;
BEGIN
    INSERT INTO inbound_message (channel, idem_key, sender, receiver, raw, body,
                                 meta, outcome)
    VALUES (p_channel, p_idem_key, p_sender, p_receiver, p_raw, p_body,
            COALESCE(p_meta, '{}'), 'complaint')
    ON CONFLICT (channel, idem_key) DO NOTHING
    RETURNING id INTO v_in;

    IF v_in IS NULL THEN
        duplicate := true;
        SELECT c.id, c.ticket, c.municipality_soate
          INTO complaint_id, ticket, municipality_soate
          FROM inbound_message m JOIN complaint c ON c.inbound_id = m.id
         WHERE m.channel = p_channel AND m.idem_key = p_idem_key;
        RETURN NEXT;
        RETURN;
    END IF;

    IF p_resident_phone IS NOT NULL THEN
        v_res := aryz_resident(p_resident_phone, v_lang);
        IF v_lang IS NULL THEN
            SELECT language INTO v_lang FROM resident WHERE id = v_res;
        END IF;
    END IF;
    v_muni := aryz_current_municipality(p_municipality);
    IF v_muni IS NULL AND v_res IS NOT NULL THEN
        SELECT aryz_current_municipality(home_soate) INTO v_muni
          FROM resident WHERE id = v_res;
    END IF;

    INSERT INTO complaint (channel, inbound_id, resident_id, reporter,
                           municipality_soate, category_code, language,
                           description, geo_lat, geo_lon)
    VALUES (p_channel, v_in, v_res, COALESCE(p_resident_phone, p_sender), v_muni,
            (SELECT code FROM service_category WHERE code = p_category),
            COALESCE(v_lang, 'ky'), COALESCE(p_description, ''), p_lat, p_lon)
    RETURNING complaint.id, complaint.ticket INTO complaint_id, ticket;

    INSERT INTO complaint_event (complaint_id, kind, to_status, actor, detail)
    VALUES (complaint_id, 'created', 'received', COALESCE(p_resident_phone, p_sender),
            jsonb_build_object('channel', p_channel, 'inbound_id', v_in));
    INSERT INTO job (kind, dedup_key, payload)
    VALUES ('route', 'route:' || complaint_id,
            jsonb_build_object('complaint_id', complaint_id));
    -- Delivered after COMMIT; identical notifications in one transaction
    -- are coalesced by PostgreSQL.
    PERFORM pg_notify('aryz_job', 'route');

    duplicate := false;
    municipality_soate := v_muni;
    RETURN NEXT;
END $$;

-- Queue an SMS to a phone.  Idempotent on idem_key.
CREATE FUNCTION aryz_outbox_sms(p_idem_key text, p_phone text, p_body text,
                                p_complaint bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (channel, idem_key, recipient, body, complaint_id)
    VALUES ('sms', p_idem_key, p_phone, p_body, p_complaint)
    ON CONFLICT (idem_key) DO NOTHING;
    PERFORM pg_notify('aryz_outbox', 'sms');
END $$;

-- Queue an MQTT publish.  Idempotent on idem_key.
CREATE FUNCTION aryz_outbox_mqtt(p_idem_key text, p_topic text, p_payload jsonb,
                                 p_complaint bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (channel, idem_key, recipient, body, complaint_id)
    VALUES ('mqtt', p_idem_key, p_topic, p_payload::text, p_complaint)
    ON CONFLICT (idem_key) DO NOTHING;
    PERFORM pg_notify('aryz_outbox', 'mqtt');
END $$;
