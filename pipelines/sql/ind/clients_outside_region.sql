-- ind.clients_outside_region — data quality: persons whose latest known municipality is not one of
-- the region's members (kb.region), per municipality. Nothing is dropped: they stay in every table
-- and indicator. Empty for an unnamed region (no member list to compare with).
-- depends: ind.clients_by_municipality
CREATE OR REPLACE VIEW ind.clients_outside_region AS
SELECT municipality, name_fi, name_sv, clients, programme_clients, ttk_cohort
FROM ind.clients_by_municipality
WHERE in_region = false
ORDER BY clients DESC, municipality;
