-- demo.sql - DEMO providers, SLA policies, contracts and staff, so a fresh
-- installation routes something.  Every row is marked is_demo or named
-- "DEMO"; production installations load with `aryzctl load-reference
-- --no-demo` and enter real contracts instead.  Phone numbers use the
-- +996 555 0000xx range and reach nobody.

INSERT INTO sla_policy (id, name, ack_minutes, resolve_minutes, update_minutes,
                        warn_percent, legal_bound_days, escalation_minutes, is_demo)
VALUES (1, 'DEMO standard', 240, 2400, 1440, 80, 14, '{240,480,960}', true),
       (2, 'DEMO water (urgent)', 60, 480, 240, 75, 14, '{60,120,240}', true)
ON CONFLICT (id) DO NOTHING;

INSERT INTO provider (id, name, dispatcher_phone, mqtt_username, is_demo)
VALUES (1, 'DEMO Taza Ai waste service', '+996555000001', 'provider-1', true),
       (2, 'DEMO Jaryk street lighting', '+996555000002', 'provider-2', true),
       (3, 'DEMO Suu Bulak water utility', '+996555000003', 'provider-3', true)
ON CONFLICT (id) DO NOTHING;
SELECT setval('provider_id_seq', greatest((SELECT max(id) FROM provider), 1));

-- Suzak AA (Jalal-Abad): waste and lighting outsourced.  Ak-Bulung AA
-- (Issyk-Kul): water outsourced; its waste contract expired in 2025.
INSERT INTO contract (id, municipality_soate, category_code, provider_id,
                      sla_policy_id, valid_from, valid_to, is_demo)
VALUES (1, '41703220856000', 'waste',    1, 1, '2024-01-01', NULL, true),
       (2, '41703220856000', 'lighting', 2, 1, '2024-01-01', NULL, true),
       (3, '41702205805000', 'water',    3, 2, '2024-01-01', NULL, true),
       (4, '41702205805000', 'waste',    1, 1, '2023-01-01', '2025-01-01', true)
ON CONFLICT (id) DO NOTHING;
SELECT setval('contract_id_seq', greatest((SELECT max(id) FROM contract), 1));

UPDATE municipality SET service_phone = '+996555000010',
                        specialist_phone = '+996555000011',
                        head_phone = '+996555000012'
 WHERE soate IN ('41703220856000', '41702205805000') AND service_phone IS NULL;
UPDATE rayon SET admin_phone = '+996555000013'
 WHERE soate IN ('41703220000000', '41702205000000') AND admin_phone IS NULL;

INSERT INTO staff (phone, name, role, provider_id, municipality_soate)
VALUES ('+996555000001', 'DEMO Taza Ai dispatcher', 'provider', 1, NULL),
       ('+996555000002', 'DEMO Jaryk dispatcher', 'provider', 2, NULL),
       ('+996555000003', 'DEMO Suu Bulak dispatcher', 'provider', 3, NULL),
       ('+996555000011', 'DEMO Suzak AA specialist', 'specialist', NULL, '41703220856000'),
       ('+996555000012', 'DEMO Suzak AA head', 'head', NULL, '41703220856000')
ON CONFLICT (phone) DO NOTHING;
