-- ind.impact_outcomes — the four outcomes of the impact comparison in long form: one row per
-- (treated person, outcome) with the person's cell, outcome Y and their cell's controls
-- (count c, mean C and sample variance v of the outcome; v = 0 for one control). A treated
-- person whose cell has no eligible control has c = 0 and null C: counted as unmatched.
-- depends: ind.impact_units
CREATE OR REPLACE VIEW ind.impact_outcomes AS
WITH long AS (
    UNPIVOT (SELECT role, pseudonym, index_month, sex, birth_year_group, prior_band,
                    employed_open_market_6m::DOUBLE AS employed_open_market_6m,
                    employed_open_market_12m::DOUBLE AS employed_open_market_12m,
                    employed_months_12m::DOUBLE AS employed_months_12m,
                    municipal_cost_change_eur::DOUBLE AS municipal_cost_change_eur
             FROM ind.impact_units)
    ON employed_open_market_6m, employed_open_market_12m, employed_months_12m, municipal_cost_change_eur
    INTO NAME outcome VALUE y
),
cells AS (
    SELECT index_month, sex, birth_year_group, prior_band, outcome,
           count(*) AS controls, avg(y) AS control_mean, coalesce(var_samp(y), 0) AS control_variance
    FROM long WHERE role = 'control'
    GROUP BY ALL
)
SELECT t.outcome, t.pseudonym, t.index_month, t.sex, t.birth_year_group, t.prior_band, t.y,
       coalesce(c.controls, 0) AS controls, c.control_mean, c.control_variance,
       t.y - c.control_mean AS d
FROM long t
LEFT JOIN cells c USING (index_month, sex, birth_year_group, prior_band, outcome)
WHERE t.role = 'treated';
