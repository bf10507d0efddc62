-- ind.coaching_windows — coached programme clients per follow-up window (6 / 12 months from their
-- first coaching start, observed by as_of), with the days to their placement within the window
-- (null when not placed): the coaching episode starting on first_coaching_start has a placement
-- date within [start, start + window] and an employment contract (AVOIN, PALKKATUKI, OPPISOPIMUS);
-- a work trial (TYOKOKEILU) is not employment. ind.coaching_placements and
-- ind.median_distributions read it. Person-level: it never leaves the region.
CREATE OR REPLACE VIEW ind.coaching_windows AS
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
SELECT e.window_months, e.pseudonym, e.start_date, e.window_end, p.days_to_placement
FROM eligible e LEFT JOIN placed p USING (window_months, pseudonym);
