-- ind.impact_balance — how alike the matched treated and their controls are before TTK:
-- per covariate, the treated mean against the pool of every (eligible control, index month)
-- pair of the matched treated's index months (before matching, unweighted) and against the
-- matched controls (mean over matched treated of their cell's control mean). Standardised mean
-- differences share one denominator, sqrt((var_treated + var_pool) / 2), sample variances;
-- null when it is 0 or undefined. |smd_after| ≤ 0.1 is the usual mark of good balance.
-- depends: ind.impact_units, ind.impact_cells
CREATE OR REPLACE VIEW ind.impact_balance AS
WITH covariates AS (
    SELECT * FROM (VALUES (1, 'birth_year'), (2, 'male'), (3, 'prior_unemployed_months'),
                          (4, 'prior_municipal_cost_eur')) v(sort_order, covariate)
),
units AS (
    SELECT role, index_month, sex, birth_year_group, prior_band, birth_year::DOUBLE AS birth_year,
           (sex = 'M')::INTEGER::DOUBLE AS male, prior_unemployed_months::DOUBLE AS prior_unemployed_months,
           prior_municipal_cost_eur::DOUBLE AS prior_municipal_cost_eur
    FROM ind.impact_units
),
matched_months AS (
    SELECT DISTINCT index_month FROM ind.impact_cells WHERE treated > 0 AND controls > 0
),
treated AS (  -- matched treated, one row per covariate, with their cell's control mean
    SELECT t.covariate, t.x, c.control_mean
    FROM (UNPIVOT (SELECT * FROM units WHERE role = 'treated')
          ON birth_year, male, prior_unemployed_months, prior_municipal_cost_eur INTO NAME covariate VALUE x) t
    JOIN ind.impact_cells c
      ON c.index_month = t.index_month AND c.sex IS NOT DISTINCT FROM t.sex AND c.birth_year_group IS NOT DISTINCT FROM t.birth_year_group
     AND c.prior_band IS NOT DISTINCT FROM t.prior_band AND c.measure = t.covariate
    WHERE c.controls > 0
),
pool AS (  -- every (eligible control, index month) pair of the matched treated's index months
    UNPIVOT (SELECT {'mean': avg(birth_year), 'variance': var_samp(birth_year)} AS birth_year,
                    {'mean': avg(male), 'variance': var_samp(male)} AS male,
                    {'mean': avg(prior_unemployed_months), 'variance': var_samp(prior_unemployed_months)}
                        AS prior_unemployed_months,
                    {'mean': avg(prior_municipal_cost_eur), 'variance': var_samp(prior_municipal_cost_eur)}
                        AS prior_municipal_cost_eur
             FROM units SEMI JOIN matched_months USING (index_month)
             WHERE role = 'control')
    ON birth_year, male, prior_unemployed_months, prior_municipal_cost_eur INTO NAME covariate VALUE stats
),
sides AS (
    SELECT covariate, avg(x) AS treated_mean, var_samp(x) AS var_treated, avg(control_mean) AS matched_mean
    FROM treated GROUP BY covariate
),
joined AS (
    SELECT v.sort_order, v.covariate, s.treated_mean, p.stats.mean AS pool_mean, s.matched_mean,
           nullif(sqrt((s.var_treated + p.stats.variance) / 2), 0) AS denominator
    FROM covariates v
    LEFT JOIN sides s USING (covariate)
    LEFT JOIN pool p USING (covariate)
)
SELECT covariate, treated_mean, pool_mean, matched_mean,
       (treated_mean - pool_mean) / denominator AS smd_before,
       (treated_mean - matched_mean) / denominator AS smd_after
FROM joined
ORDER BY sort_order;
