-- ind.impact_estimates — effect of starting TTK in a month against not starting then
-- (knowledge-base spec v2): per outcome, d_i = Y_i − C_s(i) over matched treated,
-- att = mean d_i, se = sqrt(Σ(d_i − att)² / (n(n − 1)) + Σ_s (t_s / n)² · v_s / c_s),
-- ci = att ∓ 1.96 · se; att, se and ci are null when n < 2.
-- depends: ind.impact_outcomes, ind.impact_units, ind.impact_cells
CREATE OR REPLACE VIEW ind.impact_estimates AS
WITH outcomes AS (
    SELECT * FROM (VALUES (1, 'employed_open_market_6m'), (2, 'employed_open_market_12m'),
                          (3, 'employed_months_12m'), (4, 'municipal_cost_change_eur')) v(sort_order, outcome)
),
matched AS (SELECT * FROM ind.impact_outcomes WHERE controls > 0),
by_outcome AS (
    SELECT outcome, count(*) AS n, avg(y) AS treated_mean, avg(control_mean) AS control_mean,
           avg(d) AS att, var_samp(d) AS var_d
    FROM matched GROUP BY outcome
),
cell_term AS (  -- Σ_s (t_s / n)² · v_s / c_s over cells with matched treated
    SELECT m.outcome, sum((m.t_s::DOUBLE / b.n) ** 2 * m.v_s / m.c_s) AS term
    FROM (SELECT outcome, index_month, sex, birth_year_group, prior_band, count(*) AS t_s,
                 any_value(controls) AS c_s, any_value(control_variance) AS v_s
          FROM matched GROUP BY ALL) m
    JOIN by_outcome b USING (outcome)
    GROUP BY m.outcome
),
unmatched AS (
    SELECT outcome, count(*) AS unmatched_treated FROM ind.impact_outcomes WHERE controls = 0 GROUP BY outcome
),
control_persons AS (  -- distinct persons among the eligible controls of the matched treated's cells
    SELECT count(DISTINCT u.pseudonym) AS controls
    FROM ind.impact_units u
    SEMI JOIN (SELECT * FROM ind.impact_cells WHERE measure = 'employed_open_market_6m' AND treated > 0 AND controls > 0) c
      ON c.index_month = u.index_month AND c.sex IS NOT DISTINCT FROM u.sex
     AND c.birth_year_group IS NOT DISTINCT FROM u.birth_year_group AND c.prior_band = u.prior_band
    WHERE u.role = 'control'
),
estimates AS (
    SELECT o.sort_order, o.outcome, coalesce(b.n, 0) AS treated, coalesce(u.unmatched_treated, 0) AS unmatched_treated,
           b.treated_mean, b.control_mean,
           CASE WHEN b.n >= 2 THEN b.att END AS att,
           CASE WHEN b.n >= 2 THEN sqrt(b.var_d / b.n + coalesce(t.term, 0)) END AS se
    FROM outcomes o
    LEFT JOIN by_outcome b USING (outcome)
    LEFT JOIN cell_term t USING (outcome)
    LEFT JOIN unmatched u USING (outcome)
)
SELECT outcome, treated, unmatched_treated, (SELECT controls FROM control_persons) AS controls,
       treated_mean, control_mean, att, se, att - 1.96 * se AS ci_low, att + 1.96 * se AS ci_high
FROM estimates
ORDER BY sort_order;
