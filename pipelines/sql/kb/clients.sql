-- kb.clients: one row per pseudonymised person, across every partner (from kb.person_sources).
-- Programme clients (a ttk or valmennus episode) appear only with consent in force;
-- everyone else is the comparison population. Municipality = the latest known one
-- (the record with the latest start date among ttk, te, typ and kunta; then the latest
-- delivery; then te before ttk, typ and kunta).
-- depends: kb.person_sources
-- refresh: by person
CREATE TABLE kb.clients AS
SELECT pseudonym,
       any_value(birth_year) AS birth_year,
       any_value(sex) AS sex,
       arg_max(municipality, (place_start, place_period, -CASE partner WHEN 'te' THEN 1 WHEN 'ttk' THEN 2
                                                                     WHEN 'typ' THEN 3 WHEN 'kunta' THEN 4 END))
           AS municipality,
       bool_or(temporary_id) AS temporary_id,
       bool_or(partner IN ('ttk', 'valmennus')) AS programme_client,
       min(first_ttk_start) AS first_ttk_start,
       min(first_coaching_start) AS first_coaching_start
FROM kb.person_sources
GROUP BY pseudonym
ORDER BY pseudonym;
