-- ind.impact_event_study — share in open-market employment (status 11) k months from the index
-- month, k = −12 … 12: matched treated against their cells' eligible controls (each treated
-- person weighted once, as in ind.impact_estimates). Before the index month the lines should
-- run together; the gap after it is the effect. `treated` = matched treated behind each point.
-- depends: ind.impact_outcomes, ind.impact_units
CREATE OR REPLACE VIEW ind.impact_event_study AS
WITH months AS (SELECT unnest(range(-12, 13)) AS relative_month),
matched AS (  -- matched treated: a cell with at least one eligible control
    SELECT DISTINCT u.pseudonym, u.index_month, u.sex, u.birth_year_group, u.prior_band, u.open_market_months
    FROM ind.impact_units u
    JOIN ind.impact_outcomes o USING (pseudonym, index_month)
    WHERE u.role = 'treated' AND o.controls > 0
),
control_patterns AS (  -- controls per cell and pattern of employed months: few rows to spread over k
    SELECT index_month, sex, birth_year_group, prior_band, open_market_months, count(*) AS n
    FROM ind.impact_units WHERE role = 'control'
    GROUP BY ALL
),
cell_shares AS (
    SELECT p.index_month, p.sex, p.birth_year_group, p.prior_band, m.relative_month,
           sum(p.n * ((p.open_market_months >> (m.relative_month + 12)) & 1))::DOUBLE / sum(p.n) AS control_share
    FROM control_patterns p CROSS JOIN months m
    GROUP BY ALL
),
points AS (
    SELECT m.relative_month,
           count(t.pseudonym) AS treated,
           avg(((t.open_market_months >> (m.relative_month + 12)) & 1)::DOUBLE) AS treated_share,
           avg(c.control_share) AS control_share
    FROM months m
    LEFT JOIN matched t ON TRUE
    LEFT JOIN cell_shares c ON c.index_month = t.index_month AND c.sex = t.sex
     AND c.birth_year_group = t.birth_year_group AND c.prior_band = t.prior_band
     AND c.relative_month = m.relative_month
    GROUP BY m.relative_month
)
SELECT relative_month, treated, treated_share, control_share, treated_share - control_share AS difference
FROM points
ORDER BY relative_month;
