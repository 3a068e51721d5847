-- 0001_reference.sql - territory, services, providers, contracts, SLA policy.
--
-- Municipalities are keyed by their 14-digit SOATE code, never by name
-- (names repeat across rayons).  Reference data is versioned: valid_from /
-- valid_to on every territorial row, and municipality_succession maps old
-- codes to new ones when a reform merges aiyl aimaks.

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE DOMAIN soate AS text CHECK (VALUE ~ '^[0-9]{14}$');
CREATE DOMAIN e164 AS text CHECK (VALUE ~ '^\+[1-9][0-9]{7,14}$');

CREATE TABLE oblast (
    soate       soate PRIMARY KEY,
    name_ru     text NOT NULL,
    name_ky     text,
    name_latin  text NOT NULL
);

CREATE TABLE rayon (
    soate        soate PRIMARY KEY,
    oblast_soate soate NOT NULL REFERENCES oblast,
    kind         text NOT NULL CHECK (kind IN ('rayon', 'city')),
    name_ru      text NOT NULL,
    name_ky      text,
    name_latin   text NOT NULL,
    admin_phone  e164,             -- rayon administration, last escalation level
    valid_from   date NOT NULL DEFAULT '1991-01-01',
    valid_to     date CHECK (valid_to IS NULL OR valid_to > valid_from)
);

-- Working calendar: weekdays and hours, plus holidays (recurring by
-- month/day, or one-time dates such as Orozo Ait loaded per year).
CREATE TABLE work_calendar (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    timezone    text NOT NULL DEFAULT 'Asia/Bishkek',
    work_start  time NOT NULL DEFAULT '09:00',
    work_end    time NOT NULL DEFAULT '18:00',
    workdays    int[] NOT NULL DEFAULT '{1,2,3,4,5}',  -- ISO: 1 = Monday
    CHECK (work_end > work_start),
    -- ISO days only: a Sunday written as 0 would silently never be one.
    CHECK (workdays <@ '{1,2,3,4,5,6,7}'),
    -- A zone PostgreSQL knows, checked when the row is written, not when
    -- the first complaint of the municipality is routed.
    CHECK (('2000-01-01 00:00+00'::timestamptz AT TIME ZONE timezone) IS NOT NULL)
);

CREATE TABLE calendar_holiday (
    calendar_id int NOT NULL REFERENCES work_calendar ON DELETE CASCADE,
    name        text NOT NULL,
    day         date,                       -- one-time holiday
    month       int CHECK (month BETWEEN 1 AND 12),  -- recurring holiday
    mday        int CHECK (mday BETWEEN 1 AND 31),
    CHECK ((day IS NOT NULL AND month IS NULL AND mday IS NULL)
        OR (day IS NULL AND month IS NOT NULL AND mday IS NOT NULL)),
    UNIQUE (calendar_id, day),
    UNIQUE (calendar_id, month, mday)
);

CREATE TABLE municipality (
    soate            soate PRIMARY KEY,
    rayon_soate      soate NOT NULL REFERENCES rayon,
    kind             text NOT NULL CHECK (kind IN ('aiyl_aimak', 'town', 'city')),
    name_ru          text NOT NULL,
    name_ky          text,
    name_ky_verified boolean NOT NULL DEFAULT true,
    name_latin       text NOT NULL,
    notes            text,
    calendar_id      int NOT NULL DEFAULT 1 REFERENCES work_calendar,
    service_phone    e164,      -- the municipality's own service desk
    specialist_phone e164,      -- escalation level 2
    head_phone       e164,      -- head of the aiyl okmotu, level 3
    valid_from       date NOT NULL DEFAULT '1991-01-01',
    valid_to         date CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX municipality_rayon ON municipality (rayon_soate);

-- A reform: old municipality replaced by new from a date.
CREATE TABLE municipality_succession (
    old_soate   soate NOT NULL REFERENCES municipality,
    new_soate   soate NOT NULL REFERENCES municipality,
    effective   date NOT NULL,
    PRIMARY KEY (old_soate, new_soate),
    CHECK (old_soate <> new_soate)
);

-- Spellings residents use for a municipality, lower-cased; names repeat,
-- so one alias may point at several municipalities.
CREATE TABLE municipality_alias (
    soate  soate NOT NULL REFERENCES municipality ON DELETE CASCADE,
    alias  text NOT NULL CHECK (alias <> '' AND alias = lower(alias)),
    PRIMARY KEY (alias, soate)
);

CREATE TABLE service_category (
    code     text PRIMARY KEY CHECK (code ~ '^[a-z_]+$'),
    name_ky  text NOT NULL,
    name_ru  text NOT NULL,
    name_en  text NOT NULL,
    sort     int NOT NULL DEFAULT 0
);

CREATE TABLE category_keyword (
    category_code text NOT NULL REFERENCES service_category ON DELETE CASCADE,
    keyword       text NOT NULL CHECK (keyword <> '' AND keyword = lower(keyword)),
    lang          text NOT NULL CHECK (lang IN ('ky', 'ru', 'latin')),
    PRIMARY KEY (keyword, category_code)
);

CREATE TABLE provider (
    id               bigserial PRIMARY KEY,
    name             text NOT NULL,
    dispatcher_phone e164,
    mqtt_username    text UNIQUE,   -- its MQTT identity, for provider topics
    is_demo          boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Durations are working minutes of the municipality's calendar.
CREATE TABLE sla_policy (
    id                  serial PRIMARY KEY,
    name                text NOT NULL UNIQUE,
    ack_minutes         int NOT NULL CHECK (ack_minutes > 0),
    resolve_minutes     int NOT NULL CHECK (resolve_minutes >= ack_minutes),
    update_minutes      int CHECK (update_minutes > 0),
    warn_percent        int NOT NULL DEFAULT 80 CHECK (warn_percent BETWEEN 1 AND 99),
    legal_bound_days    int NOT NULL DEFAULT 14 CHECK (legal_bound_days BETWEEN 1 AND 14),
    escalation_minutes  int[] NOT NULL DEFAULT '{240,480,960}'   -- delay per level 1..n
                        CHECK (array_position(escalation_minutes, NULL) IS NULL
                               AND 0 < ALL (escalation_minutes)),
    is_demo             boolean NOT NULL DEFAULT false
);

CREATE TABLE contract (
    id                 bigserial PRIMARY KEY,
    municipality_soate soate NOT NULL REFERENCES municipality,
    category_code      text NOT NULL REFERENCES service_category,
    provider_id        bigint NOT NULL REFERENCES provider,
    sla_policy_id      int NOT NULL REFERENCES sla_policy,
    valid_from         date NOT NULL,
    valid_to           date,       -- exclusive; NULL = open-ended
    is_demo            boolean NOT NULL DEFAULT false,
    CHECK (valid_to IS NULL OR valid_to > valid_from),
    -- One provider per municipality and category at any time.
    EXCLUDE USING gist (municipality_soate WITH =, category_code WITH =,
                        daterange(valid_from, valid_to) WITH &&)
);

-- Registered phones of staff and providers, who may send OK/DONE/INFO.
CREATE TABLE staff (
    id                 bigserial PRIMARY KEY,
    phone              e164 NOT NULL UNIQUE,
    name               text NOT NULL,
    role               text NOT NULL CHECK (role IN ('provider', 'specialist', 'head', 'rayon', 'operator')),
    provider_id        bigint REFERENCES provider,
    municipality_soate soate REFERENCES municipality,
    CHECK (role <> 'provider' OR provider_id IS NOT NULL)
);
