-- ind.ttk_process — the TTK assessment process by calendar quarter of episode start:
-- episodes started, waiting time from referral, how many have ended, their duration and
-- the share finished within the 3–6 month target (≤ 183 days). TTK-cohort members only.
-- depends: ind.ttk_cohort
CREATE OR REPLACE VIEW ind.ttk_process AS
WITH episodes AS (
    SELECT e.*
    FROM kb.episodes e
    SEMI JOIN ind.ttk_cohort USING (pseudonym)
    WHERE e.service = 'TTK'
)
SELECT year(start_date) || 'Q' || quarter(start_date) AS quarter,
       count(*) AS started,
       median(start_date - referral_date)::DOUBLE AS median_wait_days,
       count(end_date) AS ended,
       median(end_date - start_date)::DOUBLE AS median_duration_days,
       CASE WHEN count(end_date) > 0
            THEN (count(*) FILTER (WHERE end_date - start_date <= 183))::DOUBLE / count(end_date) END
           AS share_within_6_months
FROM episodes
GROUP BY 1
ORDER BY 1;
