-- ind.ttk_next_service — every ended TTK episode of the TTK cohort with the next episode of any
-- service starting on or after its end date: next_service (null = none yet by as_of) and the days
-- from the end to its start. ind.time_to_next_service and ind.median_distributions read it.
-- Person-level: it never leaves the region.
-- depends: ind.ttk_cohort
CREATE OR REPLACE VIEW ind.ttk_next_service AS
WITH ttk AS (
    SELECT e.pseudonym, e.start_date, e.end_date
    FROM kb.episodes e SEMI JOIN ind.ttk_cohort USING (pseudonym)
    WHERE e.service = 'TTK' AND e.end_date IS NOT NULL
)
SELECT t.pseudonym, t.start_date, t.end_date,
       arg_min(n.service, (n.start_date, n.service)) AS next_service,
       min(n.start_date) - t.end_date AS days
FROM ttk t
LEFT JOIN kb.episodes n
  ON n.pseudonym = t.pseudonym AND n.start_date >= t.end_date
 AND NOT (n.service = 'TTK' AND n.start_date = t.start_date)
GROUP BY t.pseudonym, t.start_date, t.end_date;
