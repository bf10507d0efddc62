-- ind.cost_savings — municipal share of labour market subsidy (TMTU) and basic social
-- assistance (TOTU) paid to TTK-cohort members in the 12 months before and after their
-- index month m0 (months m0−12 … m0−1 against m0+1 … m0+12), for members whose m0 + 12
-- months has been observed (≤ the month of as_of). TOTAL = TMTU + TOTU.
-- depends: ind.ttk_cohort
CREATE OR REPLACE VIEW ind.cost_savings AS
WITH cohort AS (
    SELECT pseudonym, index_month AS m0
    FROM ind.ttk_cohort
    WHERE (index_month + INTERVAL 12 MONTH)::DATE
          <= date_trunc('month', (SELECT as_of FROM kb.build_info))::DATE
),
benefits AS (SELECT unnest(['TMTU', 'TOTU']) AS benefit),
sums AS (
    SELECT b.benefit,
           coalesce(sum(k.municipal_share_eur) FILTER (
               WHERE k.month >= (c.m0 - INTERVAL 12 MONTH)::DATE AND k.month < c.m0), 0) AS before_eur,
           coalesce(sum(k.municipal_share_eur) FILTER (
               WHERE k.month > c.m0 AND k.month <= (c.m0 + INTERVAL 12 MONTH)::DATE), 0) AS after_eur
    FROM benefits b
    LEFT JOIN (cohort c JOIN kb.benefits k USING (pseudonym)) ON k.benefit = b.benefit
    GROUP BY b.benefit
),
rows AS (
    SELECT benefit, before_eur, after_eur FROM sums
    UNION ALL
    SELECT 'TOTAL', sum(before_eur), sum(after_eur) FROM sums
)
SELECT benefit,
       (SELECT count(*) FROM cohort) AS clients,
       before_eur::DECIMAL(14, 2) AS before_eur,
       after_eur::DECIMAL(14, 2) AS after_eur,
       (before_eur - after_eur)::DECIMAL(14, 2) AS saving_eur
FROM rows
ORDER BY CASE benefit WHEN 'TMTU' THEN 1 WHEN 'TOTU' THEN 2 ELSE 3 END;
