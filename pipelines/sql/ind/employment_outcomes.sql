-- ind.employment_outcomes — labour-market status of the TTK cohort 0, 6 and 12 months
-- after the index date (first TTK episode start).
-- clients: cohort members whose index date + window is on or before as_of.
-- Status on a day: ind.cohort_status_by_month (no spell covering it = counted in `other`).
-- depends: ind.cohort_status_by_month
CREATE OR REPLACE VIEW ind.employment_outcomes AS
WITH windows AS (SELECT unnest([0, 6, 12]) AS window_months),
status AS (
    SELECT months_after_index AS window_months, pseudonym, status
    FROM ind.cohort_status_by_month WHERE months_after_index IN (0, 6, 12)
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
