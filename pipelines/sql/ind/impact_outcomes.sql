-- ind.impact_outcomes — the four outcomes of the impact comparison in long form: one row per
-- (treated person, outcome) with the person's cell, outcome Y and their cell's controls
-- (count c, mean C and sample variance v of the outcome; v = 0 for one control). A treated
-- person whose cell has no eligible control has c = 0 and null C: counted as unmatched.
-- depends: ind.impact_units, ind.impact_cells
CREATE OR REPLACE VIEW ind.impact_outcomes AS
WITH treated AS (
    UNPIVOT (SELECT pseudonym, index_month, sex, birth_year_group, prior_band,
                    employed_open_market_6m::DOUBLE AS employed_open_market_6m,
                    employed_open_market_12m::DOUBLE AS employed_open_market_12m,
                    employed_months_12m::DOUBLE AS employed_months_12m,
                    municipal_cost_change_eur::DOUBLE AS municipal_cost_change_eur
             FROM ind.impact_units WHERE role = 'treated')
    ON employed_open_market_6m, employed_open_market_12m, employed_months_12m, municipal_cost_change_eur
    INTO NAME outcome VALUE y
)
SELECT t.outcome, t.pseudonym, t.index_month, t.sex, t.birth_year_group, t.prior_band, t.y,
       c.controls, c.control_mean, c.control_variance, t.y - c.control_mean AS d
FROM treated t
JOIN ind.impact_cells c
  ON c.index_month = t.index_month AND c.sex IS NOT DISTINCT FROM t.sex AND c.birth_year_group IS NOT DISTINCT FROM t.birth_year_group
 AND c.prior_band IS NOT DISTINCT FROM t.prior_band AND c.measure = t.outcome;
