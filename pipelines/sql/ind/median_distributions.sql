-- ind.median_distributions — the exact distribution of the whole days behind every median of the
-- indicators: one row per (indicator, key, measure, days) with how many values it holds. A median
-- of several regions is the median of their summed distributions, so `tyokyky pool` pools medians
-- exactly from this view. key = the indicator's row (window_months, quarter or next_service as
-- text; null where that key is null); measure = the median's column.
-- depends: ind.coaching_windows, ind.ttk_cohort, ind.ttk_next_service
CREATE OR REPLACE VIEW ind.median_distributions AS
WITH ttk AS (
    SELECT year(e.start_date) || 'Q' || quarter(e.start_date) AS quarter, e.start_date - e.referral_date AS wait_days,
           e.end_date - e.start_date AS duration_days
    FROM kb.episodes e SEMI JOIN ind.ttk_cohort USING (pseudonym)
    WHERE e.service = 'TTK'
),
values AS (
    SELECT 'coaching_placements' AS indicator, window_months::VARCHAR AS key,
           'median_days_to_placement' AS measure, days_to_placement AS days
    FROM ind.coaching_windows WHERE days_to_placement IS NOT NULL
    UNION ALL
    SELECT 'ttk_process', quarter, 'median_wait_days', wait_days FROM ttk WHERE wait_days IS NOT NULL
    UNION ALL
    SELECT 'ttk_process', quarter, 'median_duration_days', duration_days FROM ttk WHERE duration_days IS NOT NULL
    UNION ALL
    SELECT 'time_to_next_service', next_service, 'median_days', days FROM ind.ttk_next_service WHERE days IS NOT NULL
)
SELECT indicator, key, measure, days::BIGINT AS days, count(*) AS n
FROM values
GROUP BY ALL
ORDER BY indicator, key NULLS LAST, measure, days;
