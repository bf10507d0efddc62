-- ind.employment_outcomes — labour-market status of the TTK cohort 0, 6 and 12 months
-- after the index date (first TTK episode start).
-- clients: cohort members whose index date + window is on or before as_of.
-- Status on a day = the kb.status_spells spell covering it; where spells overlap the one
-- with the latest start decides; where none covers it, no status (counted in `other`).
CREATE OR REPLACE VIEW ind.employment_outcomes AS
WITH windows AS (SELECT unnest([0, 6, 12]) AS window_months),
cohort AS (
    SELECT pseudonym, first_ttk_start AS index_date
    FROM kb.clients WHERE programme_client AND first_ttk_start IS NOT NULL
),
observed AS (
    SELECT w.window_months, c.pseudonym, (c.index_date + to_months(w.window_months))::DATE AS day
    FROM cohort c CROSS JOIN windows w
    WHERE (c.index_date + to_months(w.window_months))::DATE <= (SELECT as_of FROM kb.build_info)
),
status AS (
    SELECT o.window_months, o.pseudonym, arg_max(s.status, s.start_date) AS status
    FROM observed o
    LEFT JOIN kb.status_spells s
      ON s.pseudonym = o.pseudonym AND s.start_date <= o.day
     AND (s.end_date IS NULL OR s.end_date >= o.day)
    GROUP BY o.window_months, o.pseudonym
)
SELECT w.window_months,
       count(s.pseudonym) AS clients,
       count(*) FILTER (WHERE s.status = '11') AS employed_open_market,
       count(*) FILTER (WHERE s.status = '10') AS subsidised,
       count(*) FILTER (WHERE s.status = '01') AS unemployed,
       count(*) FILTER (WHERE s.status = '12') AS in_services,
       count(s.pseudonym) FILTER (WHERE s.status IS NULL OR s.status NOT IN ('11', '10', '01', '12')) AS other,
       CASE WHEN count(s.pseudonym) > 0
            THEN (count(*) FILTER (WHERE s.status = '11'))::DOUBLE / count(s.pseudonym) END
           AS share_employed_open_market
FROM windows w LEFT JOIN status s USING (window_months)
GROUP BY w.window_months
ORDER BY w.window_months;
