-- 0050_api.sql - read-side views of aryz-apid: the public shape of a
-- complaint (never the resident's phone), its Open311 status, and the
-- provider scorecard.  Views and functions only: no table changes.

-- A timestamp as ISO 8601 in UTC ("2026-11-27T21:00:00Z"); NULL stays NULL.
CREATE OR REPLACE FUNCTION aryz_iso(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- Open311 knows only open and closed.  A resolved complaint is closed for
-- Open311 (the work is done) even while the resident may still reopen it.
CREATE OR REPLACE FUNCTION aryz_open311_status(p_status text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_status IN ('resolved', 'closed', 'rejected', 'duplicate')
                THEN 'closed' ELSE 'open' END
$$;

-- One complaint as the JSON API shows it.  municipality and provider are
-- nested objects (NULL when unknown / when the municipality itself is
-- responsible).  The reporter's phone is deliberately absent.
CREATE OR REPLACE VIEW aryz_api_complaint AS
SELECT c.id, c.ticket, c.status, c.channel,
       c.category_code AS category,
       c.municipality_soate,
       CASE WHEN m.soate IS NOT NULL THEN jsonb_build_object(
           'soate', m.soate, 'name_ru', m.name_ru, 'name_ky', m.name_ky,
           'name_latin', m.name_latin,
           'rayon', jsonb_build_object('soate', r.soate, 'name_ru', r.name_ru,
                                       'name_latin', r.name_latin))
       END AS municipality,
       c.responsible,
       c.provider_id,
       CASE WHEN p.id IS NOT NULL THEN jsonb_build_object('id', p.id, 'name', p.name)
       END AS provider,
       c.description, c.language,
       c.geo_lat AS lat, c.geo_lon AS lon,
       c.priority, c.escalation_level, c.reopen_count, c.rating,
       c.reject_reason,
       (SELECT d.ticket FROM complaint d WHERE d.id = c.duplicate_of) AS duplicate_of,
       aryz_iso(c.created_at) AS created_at,
       aryz_iso(c.updated_at) AS updated_at,
       aryz_iso(c.routed_at) AS routed_at,
       aryz_iso(c.acknowledged_at) AS acknowledged_at,
       aryz_iso(c.resolved_at) AS resolved_at,
       aryz_iso(c.closed_at) AS closed_at
  FROM complaint c
  LEFT JOIN municipality m ON m.soate = c.municipality_soate
  LEFT JOIN rayon r ON r.soate = m.rayon_soate
  LEFT JOIN provider p ON p.id = c.provider_id;

-- Provider scorecard: the evidence a municipality needs to judge an
-- outsourced service.  Times are wall-clock minutes from routing (when the
-- provider got the complaint) to acknowledgement / resolution; a complaint
-- is within SLA when no ack_breach or resolve_breach timer of it ever
-- fired and acted (aryz-escalated marks a timer that no longer applied,
-- e.g. of an older generation, fired with another outcome).  Shares are fractions 0..1, NULL when there is nothing to count.
CREATE OR REPLACE VIEW aryz_provider_scorecard AS
WITH breached AS (
    SELECT DISTINCT complaint_id FROM sla_timer
     WHERE kind IN ('ack_breach', 'resolve_breach') AND fired_at IS NOT NULL
       AND outcome = 'acted'
)
SELECT p.id AS provider_id, p.name,
       count(c.id) AS complaints,
       count(c.id) FILTER (WHERE c.status NOT IN
           ('resolved', 'closed', 'rejected', 'duplicate')) AS open,
       count(c.acknowledged_at) AS acknowledged,
       count(c.resolved_at) AS resolved,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY
           extract(epoch FROM c.acknowledged_at - c.routed_at) / 60)::numeric, 1)::float8
           AS median_ack_minutes,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY
           extract(epoch FROM c.resolved_at - c.routed_at) / 60)::numeric, 1)::float8
           AS median_resolve_minutes,
       count(c.id) FILTER (WHERE c.id IS NOT NULL AND b.complaint_id IS NULL)
           AS within_sla,
       round(count(c.id) FILTER (WHERE c.id IS NOT NULL AND b.complaint_id IS NULL)::numeric
             / nullif(count(c.id), 0), 4)::float8 AS within_sla_share,
       count(c.id) FILTER (WHERE c.reopen_count > 0) AS reopened,
       round(count(c.id) FILTER (WHERE c.reopen_count > 0)::numeric
             / nullif(count(c.id), 0), 4)::float8 AS reopen_rate,
       count(c.rating) AS rated,
       round(avg(c.rating), 2)::float8 AS average_rating
  FROM provider p
  LEFT JOIN complaint c ON c.provider_id = p.id
  LEFT JOIN breached b ON b.complaint_id = c.id
 GROUP BY p.id, p.name;
