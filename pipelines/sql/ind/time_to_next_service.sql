-- ind.time_to_next_service — from the end of each ended TTK episode of the TTK cohort to
-- the start of the next episode of any service starting on or after that end date.
-- next_service NULL = no next service yet (as_of).
-- depends: ind.ttk_cohort
CREATE OR REPLACE VIEW ind.time_to_next_service AS
WITH ttk AS (
    SELECT e.pseudonym, e.start_date, e.end_date
    FROM kb.episodes e SEMI JOIN ind.ttk_cohort USING (pseudonym)
    WHERE e.service = 'TTK' AND e.end_date IS NOT NULL
),
nxt AS (
    SELECT t.pseudonym, t.end_date,
           arg_min(n.service, (n.start_date, n.service)) AS next_service,
           min(n.start_date) - t.end_date AS days
    FROM ttk t
    LEFT JOIN kb.episodes n
      ON n.pseudonym = t.pseudonym AND n.start_date >= t.end_date
     AND NOT (n.service = 'TTK' AND n.start_date = t.start_date)
    GROUP BY t.pseudonym, t.start_date, t.end_date
)
SELECT next_service, count(*) AS episodes, count(DISTINCT pseudonym) AS clients,
       median(days)::DOUBLE AS median_days, avg(days) AS mean_days, max(days) AS max_days
FROM nxt
GROUP BY next_service
ORDER BY next_service NULLS LAST;
