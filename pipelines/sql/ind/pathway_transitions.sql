-- ind.pathway_transitions — which service directly follows which in the TTK cohort's
-- pathways. Each member's kb.episodes are ordered by (start_date, service); every
-- consecutive pair is a transition. clients = distinct members with that pair.
-- depends: ind.ttk_cohort
CREATE OR REPLACE VIEW ind.pathway_transitions AS
WITH ordered AS (
    SELECT e.pseudonym, e.service AS from_service,
           lead(e.service) OVER (PARTITION BY e.pseudonym ORDER BY e.start_date, e.service) AS to_service
    FROM kb.episodes e
    SEMI JOIN ind.ttk_cohort USING (pseudonym)
)
SELECT from_service, to_service, count(*) AS transitions, count(DISTINCT pseudonym) AS clients
FROM ordered
WHERE to_service IS NOT NULL
GROUP BY from_service, to_service
ORDER BY from_service, to_service;
