-- ind.status_by_month — labour-market status of the TTK cohort month by month after the
-- index date (0 … 24 months), with the same status rule as ind.employment_outcomes.
-- status 'none' = no spell covers the day. Only observed days (≤ as_of) count.
-- depends: ind.cohort_status_by_month
CREATE OR REPLACE VIEW ind.status_by_month AS
SELECT months_after_index, coalesce(status, 'none') AS status, count(*) AS clients,
       count(*)::DOUBLE / sum(count(*)) OVER (PARTITION BY months_after_index) AS share
FROM ind.cohort_status_by_month
GROUP BY 1, 2
ORDER BY 1, 2;
