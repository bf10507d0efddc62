-- ind.cohort_status_by_month — "status on day D" of the contract for the TTK cohort on the days
-- index date + 0 … 24 months, in one place: the kb.status_spells spell covering D (start ≤ D ≤
-- end, open end = ongoing); where spells overlap the one with the latest start; where none, null.
-- Only observed days (≤ as_of). ind.employment_outcomes and ind.status_by_month read it.
-- depends: ind.ttk_cohort
CREATE OR REPLACE VIEW ind.cohort_status_by_month AS
WITH days AS (
    SELECT c.pseudonym, m.months_after_index, (c.index_date + to_months(m.months_after_index))::DATE AS day
    FROM ind.ttk_cohort c CROSS JOIN (SELECT unnest(range(0, 25)) AS months_after_index) m
    WHERE (c.index_date + to_months(m.months_after_index))::DATE <= (SELECT as_of FROM kb.build_info)
)
SELECT d.pseudonym, d.months_after_index, d.day, arg_max(s.status, s.start_date) AS status
FROM days d
LEFT JOIN kb.status_spells s
  ON s.pseudonym = d.pseudonym AND s.start_date <= d.day AND (s.end_date IS NULL OR s.end_date >= d.day)
GROUP BY d.pseudonym, d.months_after_index, d.day;
