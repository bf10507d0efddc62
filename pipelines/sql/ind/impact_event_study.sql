-- ind.impact_event_study — share in open-market employment (status 11) k months from the index
-- month, k = −12 … 12: matched treated against their cells' eligible controls (each treated
-- person weighted once, as in ind.impact_estimates). Before the index month the lines should
-- run together; the gap after it is the effect. `treated` = matched treated behind each point.
-- depends: ind.impact_units, ind.impact_cells
CREATE OR REPLACE VIEW ind.impact_event_study AS
WITH months AS (SELECT unnest(range(-12, 13)) AS relative_month),
matched AS (  -- matched treated with their cell's control share in each month k
    SELECT k.relative_month, ((u.open_market_months >> (k.relative_month + 12)) & 1)::DOUBLE AS treated_flag,
           c.control_mean
    FROM ind.impact_units u
    JOIN ind.impact_cells c
      ON c.index_month = u.index_month AND c.sex IS NOT DISTINCT FROM u.sex AND c.birth_year_group IS NOT DISTINCT FROM u.birth_year_group
     AND c.prior_band IS NOT DISTINCT FROM u.prior_band AND c.measure = 'employed_open_market'
    JOIN months k ON k.relative_month = c.relative_month
    WHERE u.role = 'treated' AND c.controls > 0
)
SELECT m.relative_month, count(t.relative_month) AS treated, avg(t.treated_flag) AS treated_share,
       avg(t.control_mean) AS control_share, avg(t.treated_flag) - avg(t.control_mean) AS difference
FROM months m LEFT JOIN matched t USING (relative_month)
GROUP BY m.relative_month
ORDER BY m.relative_month;
