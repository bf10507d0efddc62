-- ind.status_by_month — labour-market status of the TTK cohort month by month after the
-- index date (0 … 24 months), with the same status rule as ind.employment_outcomes.
-- status 'none' = no spell covers the day. Only observed days (≤ as_of) count.
CREATE OR REPLACE VIEW ind.status_by_month AS
WITH months AS (SELECT unnest(range(0, 25)) AS months_after_index),
observed AS (
    SELECT m.months_after_index, c.pseudonym,
           (c.first_ttk_start + to_months(m.months_after_index))::DATE AS day
    FROM kb.clients c CROSS JOIN months m
    WHERE c.programme_client AND c.first_ttk_start IS NOT NULL
      AND (c.first_ttk_start + to_months(m.months_after_index))::DATE <= (SELECT as_of FROM kb.build_info)
),
status AS (
    SELECT o.months_after_index, o.pseudonym, arg_max(s.status, s.start_date) AS status
    FROM observed o
    LEFT JOIN kb.status_spells s
      ON s.pseudonym = o.pseudonym AND s.start_date <= o.day
     AND (s.end_date IS NULL OR s.end_date >= o.day)
    GROUP BY o.months_after_index, o.pseudonym
)
SELECT months_after_index, coalesce(status, 'none') AS status, count(*) AS clients,
       count(*)::DOUBLE / sum(count(*)) OVER (PARTITION BY months_after_index) AS share
FROM status
GROUP BY 1, 2
ORDER BY 1, 2;
