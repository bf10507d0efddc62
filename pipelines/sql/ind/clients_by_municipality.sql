-- ind.clients_by_municipality — persons in kb.clients by their latest known municipality, with its
-- official names and whether it belongs to the region (kb.region; null for an unnamed region).
-- People move: clients living outside the region stay in the knowledge base and are counted here.
-- municipality null = no municipality known; a code missing from kb.municipalities has null names.
CREATE OR REPLACE VIEW ind.clients_by_municipality AS
SELECT c.municipality, m.name_fi, m.name_sv,
       CASE WHEN (SELECT name FROM kb.region) IS NULL THEN NULL ELSE coalesce(m.in_region, false) END AS in_region,
       count(*) AS clients,
       count(*) FILTER (WHERE c.programme_client) AS programme_clients,
       count(*) FILTER (WHERE c.programme_client AND c.first_ttk_start IS NOT NULL) AS ttk_cohort
FROM kb.clients c
LEFT JOIN kb.municipalities m USING (municipality)
GROUP BY ALL
ORDER BY c.municipality NULLS LAST;
