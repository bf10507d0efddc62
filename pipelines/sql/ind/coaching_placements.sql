-- ind.coaching_placements — share of coached programme clients placed in a job within
-- 6 / 12 months of their first coaching start. A placement counts when the coaching
-- episode that starts on first_coaching_start has a placement date within
-- [start, start + window] and an employment contract (AVOIN, PALKKATUKI, OPPISOPIMUS);
-- a work trial (TYOKOKEILU) is not employment.
CREATE OR REPLACE VIEW ind.coaching_placements AS
WITH windows AS (SELECT unnest([6, 12]) AS window_months),
eligible AS (
    SELECT w.window_months, c.pseudonym, c.first_coaching_start AS start_date,
           (c.first_coaching_start + to_months(w.window_months))::DATE AS window_end
    FROM kb.clients c CROSS JOIN windows w
    WHERE c.programme_client AND c.first_coaching_start IS NOT NULL
      AND (c.first_coaching_start + to_months(w.window_months))::DATE <= (SELECT as_of FROM kb.build_info)
),
placed AS (
    SELECT e.window_months, e.pseudonym, min(k.placement_date - e.start_date) AS days_to_placement
    FROM eligible e
    JOIN kb.coaching k ON k.pseudonym = e.pseudonym AND k.coaching_start = e.start_date
    WHERE k.placement_date BETWEEN e.start_date AND e.window_end
      AND k.contract_type IN ('AVOIN', 'PALKKATUKI', 'OPPISOPIMUS')
    GROUP BY e.window_months, e.pseudonym
)
SELECT w.window_months,
       (SELECT count(*) FROM eligible e WHERE e.window_months = w.window_months) AS clients,
       count(p.pseudonym) AS placed,
       CASE WHEN (SELECT count(*) FROM eligible e WHERE e.window_months = w.window_months) > 0
            THEN count(p.pseudonym)::DOUBLE / (SELECT count(*) FROM eligible e WHERE e.window_months = w.window_months)
       END AS share_placed,
       median(p.days_to_placement)::DOUBLE AS median_days_to_placement
FROM windows w LEFT JOIN placed p USING (window_months)
GROUP BY w.window_months
ORDER BY w.window_months;
