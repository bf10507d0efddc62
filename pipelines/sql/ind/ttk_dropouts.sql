-- ind.ttk_dropouts — TTK cohort members with no service within 90 days after a TTK
-- episode ended, by quarter of the end date. Only episodes whose 90-day follow-up is
-- observed (end + 90 days ≤ as_of) count. A service = any other kb.episodes episode
-- running on some day in (end, end + 90]. `dropouts` leaves out episodes that ended in
-- work (TYO) or pension (ELAKE), where no further service is expected.
-- depends: ind.ttk_cohort
CREATE OR REPLACE VIEW ind.ttk_dropouts AS
WITH ended AS (
    SELECT e.pseudonym, e.start_date, e.end_date, e.end_reason
    FROM kb.episodes e SEMI JOIN ind.ttk_cohort USING (pseudonym)
    WHERE e.service = 'TTK' AND e.end_date IS NOT NULL
      AND e.end_date + 90 <= (SELECT as_of FROM kb.build_info)
),
followed AS (
    SELECT t.*, EXISTS (
        SELECT 1 FROM kb.episodes n
        WHERE n.pseudonym = t.pseudonym
          AND NOT (n.service = 'TTK' AND n.start_date = t.start_date)
          AND n.start_date <= t.end_date + 90
          AND coalesce(n.end_date, DATE '9999-12-31') > t.end_date
    ) AS has_service
    FROM ended t
)
SELECT year(end_date) || 'Q' || quarter(end_date) AS end_quarter,
       count(*) AS ended_observed,
       count(*) FILTER (WHERE NOT has_service) AS no_service_within_90_days,
       count(*) FILTER (WHERE NOT has_service AND coalesce(end_reason, '') NOT IN ('TYO', 'ELAKE')) AS dropouts,
       (count(*) FILTER (WHERE NOT has_service AND coalesce(end_reason, '') NOT IN ('TYO', 'ELAKE')))::DOUBLE
           / count(*) AS share_dropouts
FROM followed
GROUP BY 1
ORDER BY 1;
