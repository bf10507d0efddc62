-- ind.impact_cells — the eligible controls of each cell of the impact comparison (spec v2), made
-- once per build so that the views read a few thousand rows, not every control: one row per cell
-- (index_month, sex, birth_year_group, prior_band) and measure — the four outcomes, the four
-- balance covariates, and open-market employment (status 11) in each month k = −12 … 12 from the
-- index month (measure 'employed_open_market', relative_month k).
-- depends: ind.impact_units
CREATE TABLE ind.impact_cells AS
WITH cells AS (
    SELECT index_month, sex, birth_year_group, prior_band,
           count(*) FILTER (WHERE role = 'treated') AS treated,
           count(*) FILTER (WHERE role = 'control') AS controls,
           {'mean': avg(employed_open_market_6m) FILTER (WHERE role = 'control'),
            'variance': var_samp(employed_open_market_6m) FILTER (WHERE role = 'control')} AS employed_open_market_6m,
           {'mean': avg(employed_open_market_12m) FILTER (WHERE role = 'control'),
            'variance': var_samp(employed_open_market_12m) FILTER (WHERE role = 'control')} AS employed_open_market_12m,
           {'mean': avg(employed_months_12m) FILTER (WHERE role = 'control'),
            'variance': var_samp(employed_months_12m) FILTER (WHERE role = 'control')} AS employed_months_12m,
           {'mean': avg(municipal_cost_change_eur::DOUBLE) FILTER (WHERE role = 'control'),
            'variance': var_samp(municipal_cost_change_eur::DOUBLE) FILTER (WHERE role = 'control')} AS municipal_cost_change_eur,
           {'mean': avg(birth_year) FILTER (WHERE role = 'control'),
            'variance': var_samp(birth_year) FILTER (WHERE role = 'control')} AS birth_year,
           {'mean': avg((sex = 'M')::INTEGER) FILTER (WHERE role = 'control'),
            'variance': var_samp((sex = 'M')::INTEGER) FILTER (WHERE role = 'control')} AS male,
           {'mean': avg(prior_unemployed_months) FILTER (WHERE role = 'control'),
            'variance': var_samp(prior_unemployed_months) FILTER (WHERE role = 'control')} AS prior_unemployed_months,
           {'mean': avg(prior_municipal_cost_eur::DOUBLE) FILTER (WHERE role = 'control'),
            'variance': var_samp(prior_municipal_cost_eur::DOUBLE) FILTER (WHERE role = 'control')} AS prior_municipal_cost_eur
    FROM ind.impact_units
    GROUP BY ALL
),
measures AS (
    UNPIVOT cells
    ON employed_open_market_6m, employed_open_market_12m, employed_months_12m, municipal_cost_change_eur,
       birth_year, male, prior_unemployed_months, prior_municipal_cost_eur
    INTO NAME measure VALUE stats
),
patterns AS (  -- controls per cell and pattern of open-market months: few rows to spread over k
    SELECT index_month, sex, birth_year_group, prior_band, open_market_months, count(*) AS n
    FROM ind.impact_units WHERE role = 'control'
    GROUP BY ALL
),
months AS (
    SELECT p.index_month, p.sex, p.birth_year_group, p.prior_band, k.relative_month,
           sum(p.n * ((p.open_market_months >> (k.relative_month + 12)) & 1))::DOUBLE / sum(p.n) AS control_mean
    FROM patterns p CROSS JOIN (SELECT unnest(range(-12, 13)) AS relative_month) k
    GROUP BY ALL
)
SELECT m.index_month, m.sex, m.birth_year_group, m.prior_band, m.measure, NULL::INTEGER AS relative_month,
       m.treated, m.controls, m.stats.mean AS control_mean,
       CASE WHEN m.controls = 1 THEN 0 ELSE m.stats.variance END AS control_variance
FROM measures m
UNION ALL
SELECT c.index_month, c.sex, c.birth_year_group, c.prior_band, 'employed_open_market', k.relative_month,
       c.treated, c.controls, k.control_mean, NULL
FROM cells c
JOIN months k ON k.index_month = c.index_month AND k.sex IS NOT DISTINCT FROM c.sex
 AND k.birth_year_group IS NOT DISTINCT FROM c.birth_year_group AND k.prior_band = c.prior_band
ORDER BY index_month, sex, birth_year_group, prior_band, measure, relative_month;
