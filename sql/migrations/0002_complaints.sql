-- 0002_complaints.sql - residents, raw inbound messages, complaints and
-- their append-only history, the job queue, timers and the outbox.

CREATE TABLE resident (
    id          bigserial PRIMARY KEY,
    phone       e164 NOT NULL UNIQUE,
    language    text NOT NULL DEFAULT 'ky' CHECK (language IN ('ky', 'ru')),
    home_soate  soate REFERENCES municipality,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every message any ingress accepted, raw, even when it could not be
-- parsed.  (channel, idem_key) makes redelivery harmless.
CREATE TABLE inbound_message (
    id            bigserial PRIMARY KEY,
    channel       text NOT NULL CHECK (channel IN ('sms', 'ussd', 'mqtt', 'api')),
    idem_key      text NOT NULL CHECK (idem_key <> ''),
    sender        text NOT NULL,          -- E.164 phone or MQTT client id
    receiver      text,                   -- short code, service code, topic
    raw           bytea NOT NULL,         -- exactly what arrived
    body          text,                   -- decoded text, NULL if undecodable
    meta          jsonb NOT NULL DEFAULT '{}',
    outcome       text NOT NULL CHECK (outcome IN ('complaint', 'command', 'part', 'rejected', 'session')),
    error         text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, idem_key),
    CHECK (outcome <> 'rejected' OR error IS NOT NULL)
);

CREATE SEQUENCE ticket_seq START 1001;

CREATE TABLE complaint (
    id                 bigserial PRIMARY KEY,
    ticket             text NOT NULL UNIQUE DEFAULT nextval('ticket_seq')::text,
    status             text NOT NULL DEFAULT 'received' CHECK (status IN (
                         'received', 'triage', 'routed', 'acknowledged', 'in_progress',
                         'waiting_resident', 'resolved', 'closed', 'rejected', 'duplicate')),
    channel            text NOT NULL CHECK (channel IN ('sms', 'ussd', 'mqtt', 'api')),
    inbound_id         bigint UNIQUE REFERENCES inbound_message,
    resident_id        bigint REFERENCES resident,
    reporter           text NOT NULL,     -- phone, device or client id
    municipality_soate soate REFERENCES municipality,
    category_code      text REFERENCES service_category,
    language           text NOT NULL DEFAULT 'ky' CHECK (language IN ('ky', 'ru')),
    description        text NOT NULL DEFAULT '',
    geo_lat            double precision CHECK (geo_lat BETWEEN -90 AND 90),
    geo_lon            double precision CHECK (geo_lon BETWEEN -180 AND 180),
    provider_id        bigint REFERENCES provider,
    contract_id        bigint REFERENCES contract,
    responsible        text CHECK (responsible IN ('provider', 'municipality')),
    duplicate_of       bigint REFERENCES complaint,
    priority           int NOT NULL DEFAULT 0,
    escalation_level   int NOT NULL DEFAULT 0 CHECK (escalation_level >= 0),
    reopen_count       int NOT NULL DEFAULT 0,
    rating             int CHECK (rating BETWEEN 1 AND 5),
    reject_reason      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    routed_at          timestamptz,
    acknowledged_at    timestamptz,
    resolved_at        timestamptz,
    closed_at          timestamptz,
    -- A complaint past triage knows where it is and what it is about.
    CHECK (status IN ('received', 'triage', 'rejected', 'duplicate')
           OR (municipality_soate IS NOT NULL AND category_code IS NOT NULL
               AND responsible IS NOT NULL)),
    CHECK (responsible IS DISTINCT FROM 'provider' OR provider_id IS NOT NULL),
    CHECK (status <> 'rejected' OR reject_reason IS NOT NULL),
    CHECK (status <> 'duplicate' OR duplicate_of IS NOT NULL),
    CHECK (duplicate_of IS NULL OR duplicate_of <> id)
);
CREATE INDEX complaint_open ON complaint (resident_id, category_code, municipality_soate, created_at)
    WHERE status NOT IN ('closed', 'rejected', 'duplicate');
CREATE INDEX complaint_muni ON complaint (municipality_soate, created_at);
CREATE INDEX complaint_provider ON complaint (provider_id, created_at);
CREATE INDEX complaint_status ON complaint (status);

-- Append-only history: every change of a complaint is one row.
CREATE TABLE complaint_event (
    id            bigserial PRIMARY KEY,
    complaint_id  bigint NOT NULL REFERENCES complaint,
    at            timestamptz NOT NULL DEFAULT now(),
    kind          text NOT NULL,          -- created, routed, acknowledged, ...
    from_status   text,
    to_status     text,
    actor         text NOT NULL,          -- phone, daemon, staff id
    detail        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX complaint_event_complaint ON complaint_event (complaint_id, id);

CREATE FUNCTION aryz_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER complaint_event_append_only BEFORE UPDATE OR DELETE ON complaint_event
    FOR EACH ROW EXECUTE FUNCTION aryz_append_only();

-- The hot job queue.  Kept small: rows are deleted when done.  The claim
-- query is  WHERE kind = $1 AND run_at <= now() ORDER BY run_at, id
-- FOR UPDATE SKIP LOCKED, which job_claim serves exactly.
CREATE TABLE job (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('route', 'escalate', 'notify')),
    dedup_key   text UNIQUE,
    payload     jsonb NOT NULL DEFAULT '{}',
    run_at      timestamptz NOT NULL DEFAULT now(),
    attempts    int NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_claim ON job (kind, run_at, id);
ALTER TABLE job SET (autovacuum_vacuum_scale_factor = 0.0,
                     autovacuum_vacuum_threshold = 1000,
                     autovacuum_vacuum_cost_delay = 0);

CREATE TABLE dead_letter (
    id          bigserial PRIMARY KEY,
    job_id      bigint NOT NULL,
    kind        text NOT NULL,
    dedup_key   text,
    payload     jsonb NOT NULL,
    attempts    int NOT NULL,
    last_error  text NOT NULL,
    created_at  timestamptz NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    requeued_at timestamptz
);

-- SLA timers live here, not in memory.  generation lets a re-armed timer
-- supersede an old one without deleting history.
CREATE TABLE sla_timer (
    id            bigserial PRIMARY KEY,
    complaint_id  bigint NOT NULL REFERENCES complaint,
    kind          text NOT NULL CHECK (kind IN ('ack_warn', 'ack_breach', 'resolve_warn',
                      'resolve_breach', 'escalate', 'update', 'legal_bound', 'auto_close')),
    level         int NOT NULL DEFAULT 0,
    generation    int NOT NULL DEFAULT 0,
    due_at        timestamptz NOT NULL,
    fired_at      timestamptz,
    cancelled_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (complaint_id, kind, level, generation),
    CHECK (fired_at IS NULL OR cancelled_at IS NULL)
);
CREATE INDEX sla_timer_due ON sla_timer (due_at, id) WHERE fired_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX sla_timer_complaint ON sla_timer (complaint_id);

-- Transactional outbox: side effects written with the state change and
-- delivered at least once by aryz-smsd (sms) and aryz-mqttd (mqtt).
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    channel         text NOT NULL CHECK (channel IN ('sms', 'mqtt')),
    idem_key        text NOT NULL UNIQUE,
    recipient       text NOT NULL,        -- E.164 phone, or MQTT topic
    body            text NOT NULL,        -- SMS text, or JSON payload
    complaint_id    bigint REFERENCES complaint,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN (
                        'pending', 'sent', 'delivered', 'failed', 'dead')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,          -- lease of the worker sending it
    last_error      text,
    provider_ref    text,                 -- e.g. the SMSC's message id
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    delivered_at    timestamptz,
    CHECK (channel <> 'sms' OR recipient ~ '^\+[1-9][0-9]{7,14}$')
);
CREATE INDEX outbox_claim ON outbox (channel, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_complaint ON outbox (complaint_id);
