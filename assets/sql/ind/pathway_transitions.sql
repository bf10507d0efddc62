-- ind.pathway_transitions — which service directly follows which in the TTK cohort's
-- pathways. Each member's kb.episodes are ordered by (start_date, service); every
-- consecutive pair is a transition. clients = distinct members with that pair.
CREATE OR REPLACE VIEW ind.pathway_transitions AS
WITH ordered AS (
    SELECT e.pseudonym, e.service AS from_service,
           lead(e.service) OVER (PARTITION BY e.pseudonym ORDER BY e.start_date, e.service) AS to_service
    FROM kb.episodes e
    JOIN kb.clients c USING (pseudonym)
    WHERE c.programme_client AND c.first_ttk_start IS NOT NULL
)
SELECT from_service, to_service, count(*) AS transitions, count(DISTINCT pseudonym) AS clients
FROM ordered
WHERE to_service IS NOT NULL
GROUP BY from_service, to_service
ORDER BY from_service, to_service;
