-- 0020_mqtt.sql - what aryz-mqttd calls: one statement per ingest batch
-- (so a batch is one COMMIT, after which its PUBACKs may leave), provider
-- commands over MQTT, and the outbox worker's claim / sent / release.

-- Provider topics are written by the lifecycle and routing SQL as
-- aryz/v1/providers/{provider_id}/...; the broker's ACL can only bind a
-- topic to the MQTT username (%u), so the publisher sends them under the
-- provider's mqtt_username instead: aryz/v1/providers/provider-1/...
-- A provider without an mqtt_username keeps the numeric topic.
CREATE FUNCTION aryz_mqtt_topic(p_topic text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m text[];
    u text;
BEGIN
    m := regexp_match(p_topic, '^aryz/v1/providers/([0-9]{1,18})(/.*)?$');
    IF m IS NULL THEN
        RETURN p_topic;
    END IF;
    SELECT p.mqtt_username INTO u FROM provider p WHERE p.id = m[1]::bigint;
    IF u IS NULL OR u = '' THEN
        RETURN p_topic;
    END IF;
    RETURN 'aryz/v1/providers/' || u || COALESCE(m[2], '');
END $$;

-- Store one message that was refused.  The idempotency key is the client
-- and a hash of the exact bytes, so a redelivery stores nothing twice while
-- a corrected message with the same msg_id is still accepted later.
CREATE FUNCTION aryz_mqtt_reject(e jsonb, p_reason text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_raw bytea := decode(COALESCE(e->>'raw', ''), 'hex');
BEGIN
    PERFORM aryz_store_inbound('mqtt',
        'rejected:' || COALESCE(e->>'sender', '?') || ':' || encode(sha256(v_raw), 'hex'),
        COALESCE(e->>'sender', '?'), e->>'topic', v_raw, e->>'body',
        COALESCE(e->'meta', '{}') || jsonb_build_object('reason', p_reason),
        'rejected', p_reason);
END $$;

-- Municipal systems (and any staff member's software) act over MQTT too:
-- a staff row with an MQTT username gets the same rights as that staff
-- member's phone has for SMS commands.
ALTER TABLE staff ADD COLUMN mqtt_username text UNIQUE
    CHECK (mqtt_username IS NULL OR mqtt_username ~ '^[A-Za-z0-9._:@-]{1,64}$');

-- One command: ack / done / info <ticket>, from the provider or staff
-- member whose mqtt_username is e->>'sender' (the ACL binds the command
-- topic to it).  The same rules as the SMS commands: a provider only
-- touches complaints assigned to it; staff those of their municipality
-- (operators and rayon staff any); aryz_transition() decides whether the
-- move is allowed.
CREATE FUNCTION aryz_mqtt_command(e jsonb,
    OUT outcome text, OUT ticket text, OUT reason text, OUT detail jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    v_raw bytea := decode(COALESCE(e->>'raw', ''), 'hex');
    v_in bigint;
    v_dup boolean;
    v_prov bigint;
    st staff;
    c complaint;
    v_err text;
    v_cmd text := e->>'cmd';
BEGIN
    ticket := e->>'ticket';
    SELECT s.inbound_id, s.duplicate INTO v_in, v_dup
      FROM aryz_store_inbound('mqtt', e->>'idem', e->>'sender', e->>'topic',
                              v_raw, e->>'body', COALESCE(e->'meta', '{}'),
                              'command', NULL) s;
    IF v_dup THEN
        SELECT m.meta->>'result', m.meta->>'error' INTO outcome, reason
          FROM inbound_message m WHERE m.id = v_in;
        detail := jsonb_build_object('first_result', outcome);
        outcome := 'duplicate';
        RETURN;
    END IF;

    SELECT p.id INTO v_prov FROM provider p WHERE p.mqtt_username = e->>'sender';
    SELECT * INTO st FROM staff s WHERE s.mqtt_username = e->>'sender';
    SELECT * INTO c FROM complaint x WHERE x.ticket = e->>'ticket';
    IF v_prov IS NULL AND st.id IS NULL THEN
        outcome := 'rejected';
        reason := 'unknown_sender';
    ELSIF c.id IS NULL OR NOT COALESCE(
            (v_prov IS NOT NULL AND c.provider_id IS NOT DISTINCT FROM v_prov)
            OR COALESCE(st.role IN ('operator', 'rayon'), false)
            OR (st.provider_id IS NOT NULL AND st.provider_id IS NOT DISTINCT FROM c.provider_id)
            OR (st.municipality_soate IS NOT NULL
                AND st.municipality_soate IS NOT DISTINCT FROM c.municipality_soate), false) THEN
        -- The same answer for "no such ticket" and "not yours": a
        -- provider learns nothing about other providers' complaints.
        outcome := 'rejected';
        reason := 'not_found';
    ELSIF v_cmd = 'info' THEN
        outcome := 'ok';
        detail := jsonb_build_object('status', c.status, 'category', c.category_code,
                                     'municipality', c.municipality_soate,
                                     'description', c.description,
                                     'created_at', c.created_at);
    ELSE
        v_err := aryz_transition(c.id,
                                 CASE v_cmd WHEN 'ack' THEN 'acknowledged' ELSE 'resolved' END,
                                 CASE WHEN v_prov IS NOT NULL THEN 'provider:'
                                      ELSE 'staff:' END || (e->>'sender'),
                                 jsonb_build_object('via', 'mqtt', 'inbound_id', v_in)
                                 || CASE WHEN e ? 'text'
                                         THEN jsonb_build_object('text', e->>'text')
                                         ELSE '{}' END);
        IF v_err IS NULL THEN
            outcome := 'ok';
            SELECT x.status INTO v_err FROM complaint x WHERE x.id = c.id;
            detail := jsonb_build_object('status', v_err);
        ELSE
            outcome := 'rejected';
            reason := v_err;
            detail := jsonb_build_object('status', c.status);
        END IF;
    END IF;
    UPDATE inbound_message m
       SET meta = m.meta || jsonb_build_object('result', outcome, 'error', reason,
                                               'complaint_id', c.id)
     WHERE m.id = v_in;
END $$;

-- Would this error go away if the same statement ran again?  (Deadlock,
-- serialization failure, lock timeout; classes 08 connection, 53 out of
-- resources, 57 operator intervention, 58 system/I-O error.)
CREATE FUNCTION aryz_mqtt_transient(p_sqlstate text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_sqlstate IN ('40001', '40P01', '55P03')
        OR left(p_sqlstate, 2) IN ('08', '53', '57', '58')
$$;

-- One ingest batch, as a jsonb array built by aryz-mqttd, in arrival order.
-- Elements (k = kind):
--   {"k":"complaint","idem","sender","topic","raw"(hex),"body","meta",
--    "municipality","category","lang","text","lat","lon","device_id"}
--   {"k":"command","idem","sender","topic","raw","body","meta","cmd",
--    "ticket","text"}
--   {"k":"reject","sender","topic","raw","body","meta","reason"}
-- Returns one row per element: outcome accepted | duplicate | rejected |
-- ok (a command applied or answered), with the ticket and a reason.
-- Every element runs in its own subtransaction: a failure stores that
-- message as rejected ('internal_error') and the batch goes on, so one
-- poison message cannot block the stream.  A transient failure (deadlock,
-- serialization failure, lock timeout, out of resources, I/O error,
-- shutdown) is not the message's fault: it fails the whole batch, which
-- aryz-mqttd then leaves to the broker to redeliver.
CREATE FUNCTION aryz_mqtt_ingest(p_batch jsonb)
RETURNS TABLE (idx int, outcome text, ticket text, reason text, detail jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    r record;
    e jsonb;
    s record;
    v_muni text;
    v_cat text;
    v_msg text;
    v_state text;
BEGIN
    FOR r IN SELECT a.value AS v, a.ordinality AS n
               FROM jsonb_array_elements(p_batch) WITH ORDINALITY a LOOP
        e := r.v;
        idx := r.n - 1;
        outcome := NULL;
        ticket := NULL;
        reason := NULL;
        detail := NULL;
        BEGIN
            IF e->>'k' = 'reject' THEN
                PERFORM aryz_mqtt_reject(e, e->>'reason');
                outcome := 'rejected';
                reason := e->>'reason';
            ELSIF e->>'k' = 'command' THEN
                SELECT * INTO s FROM aryz_mqtt_command(e);
                outcome := s.outcome;
                ticket := s.ticket;
                reason := s.reason;
                detail := s.detail;
            ELSIF e->>'k' = 'complaint' THEN
                -- A redelivery or a resend: answer with the first ticket.
                SELECT c.ticket INTO ticket
                  FROM inbound_message m JOIN complaint c ON c.inbound_id = m.id
                 WHERE m.channel = 'mqtt' AND m.idem_key = e->>'idem';
                IF FOUND THEN
                    outcome := 'duplicate';
                ELSE
                    v_muni := NULLIF(e->>'municipality', '');
                    v_cat := NULLIF(e->>'category', '');
                    IF v_muni IS NOT NULL AND aryz_current_municipality(v_muni) IS NULL THEN
                        reason := 'unknown_municipality';
                    ELSIF v_cat IS NOT NULL AND NOT EXISTS (
                            SELECT 1 FROM service_category sc WHERE sc.code = v_cat) THEN
                        reason := 'unknown_category';
                    END IF;
                    IF reason IS NOT NULL THEN
                        PERFORM aryz_mqtt_reject(e, reason);
                        outcome := 'rejected';
                    ELSE
                        SELECT * INTO s FROM aryz_submit_complaint(
                            'mqtt', e->>'idem', e->>'sender', e->>'topic',
                            decode(e->>'raw', 'hex'), e->>'text',
                            COALESCE(e->'meta', '{}'), NULL, v_muni, v_cat,
                            e->>'lang', e->>'text',
                            (e->>'lat')::double precision, (e->>'lon')::double precision);
                        ticket := s.ticket;
                        outcome := CASE WHEN s.duplicate THEN 'duplicate' ELSE 'accepted' END;
                        -- A sensor reports through a gateway client: the
                        -- device itself is the reporter.
                        IF NOT s.duplicate AND NULLIF(e->>'device_id', '') IS NOT NULL THEN
                            UPDATE complaint SET reporter = (e->>'sender') || '/' || (e->>'device_id')
                             WHERE id = s.complaint_id;
                        END IF;
                    END IF;
                END IF;
            ELSE
                RAISE EXCEPTION 'unknown batch element kind %', e->>'k';
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT,
                                    v_state = RETURNED_SQLSTATE;
            IF aryz_mqtt_transient(v_state) THEN
                RAISE;
            END IF;
            reason := 'internal_error: ' || left(v_msg, 200);
            outcome := 'rejected';
            ticket := NULL;
            detail := NULL;
            BEGIN
                PERFORM aryz_mqtt_reject(e, reason);
            EXCEPTION WHEN OTHERS THEN
                -- Not even storable: answer and go on rather than fail
                -- the batch, which the broker would redeliver forever.
                GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT,
                                        v_state = RETURNED_SQLSTATE;
                IF aryz_mqtt_transient(v_state) THEN
                    RAISE;
                END IF;
                reason := 'unstorable: ' || left(v_msg, 200);
            END;
        END;
        RETURN NEXT;
    END LOOP;
END $$;

-- Lease up to p_limit pending MQTT outbox rows for p_lease seconds.  A
-- crashed worker's lease simply runs out and another one takes the row.
CREATE FUNCTION aryz_mqtt_claim(p_limit int, p_lease int)
RETURNS TABLE (id bigint, topic text, payload text)
LANGUAGE sql AS $$
    WITH c AS (
        SELECT o.id FROM outbox o
         WHERE o.channel = 'mqtt' AND o.status = 'pending'
           AND o.next_attempt_at <= now()
           AND (o.locked_until IS NULL OR o.locked_until <= now())
         ORDER BY o.next_attempt_at, o.id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED)
    UPDATE outbox o
       SET locked_until = now() + make_interval(secs => p_lease),
           attempts = o.attempts + 1
      FROM c
     WHERE o.id = c.id
    RETURNING o.id, aryz_mqtt_topic(o.recipient), o.body
$$;

-- The broker acknowledged these publishes (PUBACK).
CREATE FUNCTION aryz_mqtt_sent(p_ids bigint[]) RETURNS int
LANGUAGE sql AS $$
    WITH u AS (
        UPDATE outbox SET status = 'sent', sent_at = now(), locked_until = NULL,
                          last_error = NULL
         WHERE id = ANY (p_ids) AND channel = 'mqtt' AND status = 'pending'
        RETURNING 1)
    SELECT count(*)::int FROM u
$$;

-- These publishes were not acknowledged (connection lost, shutdown): make
-- them due again after p_delay seconds.
CREATE FUNCTION aryz_mqtt_release(p_ids bigint[], p_error text, p_delay int)
RETURNS int LANGUAGE sql AS $$
    WITH u AS (
        UPDATE outbox SET locked_until = NULL, last_error = p_error,
                          next_attempt_at = now() + make_interval(secs => p_delay)
         WHERE id = ANY (p_ids) AND channel = 'mqtt' AND status = 'pending'
        RETURNING 1)
    SELECT count(*)::int FROM u
$$;

-- The broker library refused the message itself (bad topic, too large):
-- retrying cannot help.
CREATE FUNCTION aryz_mqtt_dead(p_id bigint, p_error text) RETURNS void
LANGUAGE sql AS $$
    UPDATE outbox SET status = 'dead', locked_until = NULL, last_error = p_error
     WHERE id = p_id AND channel = 'mqtt' AND status = 'pending'
$$;
