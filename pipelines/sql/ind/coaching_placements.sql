-- ind.coaching_placements — share of coached programme clients placed in a job within
-- 6 / 12 months of their first coaching start. A placement counts when the coaching
-- episode that starts on first_coaching_start has a placement date within
-- [start, start + window] and an employment contract (AVOIN, PALKKATUKI, OPPISOPIMUS);
-- a work trial (TYOKOKEILU) is not employment (the rule is in ind.coaching_windows).
-- depends: ind.coaching_windows
CREATE OR REPLACE VIEW ind.coaching_placements AS
WITH windows AS (SELECT unnest([6, 12]) AS window_months)
SELECT w.window_months,
       count(c.pseudonym) AS clients,
       count(c.days_to_placement) AS placed,
       CASE WHEN count(c.pseudonym) > 0 THEN count(c.days_to_placement)::DOUBLE / count(c.pseudonym) END
           AS share_placed,
       median(c.days_to_placement)::DOUBLE AS median_days_to_placement
FROM windows w LEFT JOIN ind.coaching_windows c USING (window_months)
GROUP BY w.window_months
ORDER BY w.window_months;
