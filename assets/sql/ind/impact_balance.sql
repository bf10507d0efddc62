-- ind.impact_balance — how alike the matched treated and their controls are before TTK:
-- per covariate, the treated mean against the pool of every (eligible control, index month)
-- pair of the matched treated's index months (before matching, unweighted) and against the
-- matched controls (mean over matched treated of their cell's control mean). Standardised mean
-- differences share one denominator, sqrt((var_treated + var_pool) / 2), sample variances;
-- null when it is 0 or undefined. |smd_after| ≤ 0.1 is the usual mark of good balance.
-- depends: ind.impact_outcomes, ind.impact_units
CREATE OR REPLACE VIEW ind.impact_balance AS
WITH covariates AS (
    SELECT * FROM (VALUES (1, 'birth_year'), (2, 'male'), (3, 'prior_unemployed_months'),
                          (4, 'prior_municipal_cost_eur')) v(sort_order, covariate)
),
long AS (
    UNPIVOT (SELECT role, pseudonym, index_month, sex, birth_year_group, prior_band,
                    birth_year::DOUBLE AS birth_year, (sex = 'M')::INTEGER::DOUBLE AS male,
                    prior_unemployed_months::DOUBLE AS prior_unemployed_months,
                    prior_municipal_cost_eur::DOUBLE AS prior_municipal_cost_eur
             FROM ind.impact_units)
    ON birth_year, male, prior_unemployed_months, prior_municipal_cost_eur
    INTO NAME covariate VALUE x
),
matched AS (
    SELECT DISTINCT pseudonym, index_month FROM ind.impact_outcomes WHERE controls > 0
),
treated AS (
    SELECT l.* FROM long l JOIN matched USING (pseudonym, index_month) WHERE l.role = 'treated'
),
pool AS (
    SELECT * FROM long
    WHERE role = 'control' AND index_month IN (SELECT index_month FROM matched)
),
cells AS (
    SELECT index_month, sex, birth_year_group, prior_band, covariate, avg(x) AS control_mean
    FROM pool GROUP BY ALL
),
sides AS (
    SELECT t.covariate, avg(t.x) AS treated_mean, var_samp(t.x) AS var_treated, avg(c.control_mean) AS matched_mean
    FROM treated t
    JOIN cells c USING (index_month, sex, birth_year_group, prior_band, covariate)
    GROUP BY t.covariate
),
pooled AS (
    SELECT covariate, avg(x) AS pool_mean, var_samp(x) AS var_pool FROM pool GROUP BY covariate
),
joined AS (
    SELECT v.sort_order, v.covariate, s.treated_mean, p.pool_mean, s.matched_mean,
           nullif(sqrt((s.var_treated + p.var_pool) / 2), 0) AS denominator
    FROM covariates v
    LEFT JOIN sides s USING (covariate)
    LEFT JOIN pooled p USING (covariate)
)
SELECT covariate, treated_mean, pool_mean, matched_mean,
       (treated_mean - pool_mean) / denominator AS smd_before,
       (treated_mean - matched_mean) / denominator AS smd_after
FROM joined
ORDER BY sort_order;
