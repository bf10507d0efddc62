-- ind.impact_units — the units of the TTK impact comparison (knowledge-base spec v2), one row per
-- (role, pseudonym, index_month): every treated TTK-cohort member at their index month, and every
-- eligible not-yet-treated control at each index month that has a treated person.
-- A table, made once per build: the three impact views and evaluators' sub-group analyses read it.
--
-- Status in month m = status on the 15th of m (the spell covering that day; the latest start
-- wins where spells overlap; none = no status). Municipal cost = municipal_share_eur of TMTU and
-- TOTU. Months are first days of months; as_of_month = the month of as_of.
-- The person-month series is made once from the spells (each spell spread over the months whose
-- 15th it covers), then every window of the spec is a range over it.
CREATE TABLE ind.impact_units AS
WITH params AS (
    SELECT date_trunc('month', as_of)::DATE AS as_of_month FROM kb.build_info
),
treated_candidates AS (  -- TTK cohort, reliable code, 12 months of follow-up observed
    SELECT c.pseudonym, date_trunc('month', c.first_ttk_start)::DATE AS index_month
    FROM kb.clients c, params p
    WHERE c.programme_client AND c.first_ttk_start IS NOT NULL AND NOT c.temporary_id
      AND (date_trunc('month', c.first_ttk_start) + INTERVAL 12 MONTH)::DATE <= p.as_of_month
),
span AS (  -- every month any window of the comparison can touch
    SELECT (min(index_month) - INTERVAL 12 MONTH)::DATE AS lo, (max(index_month) + INTERVAL 12 MONTH)::DATE AS hi
    FROM treated_candidates
),
spell_months AS (  -- each spell over the months whose 15th it covers, clipped to the span
    SELECT s.pseudonym, s.status, s.start_date,
           greatest(date_trunc('month', s.start_date - INTERVAL 15 DAY) + INTERVAL 1 MONTH, span.lo)::DATE AS first_month,
           least(coalesce(date_trunc('month', s.end_date - INTERVAL 14 DAY), span.hi), span.hi)::DATE AS last_month
    FROM kb.status_spells s, span
),
month_status AS (
    SELECT pseudonym, month, arg_max(status, start_date) AS status
    FROM (SELECT pseudonym, status, start_date,
                 unnest(generate_series(first_month, last_month, INTERVAL 1 MONTH))::DATE AS month
          FROM spell_months WHERE first_month <= last_month)
    GROUP BY pseudonym, month
),
index_months AS (  -- months with a treated person: status 01 in the month before the index month
    SELECT t.pseudonym, t.index_month
    FROM treated_candidates t
    JOIN month_status m ON m.pseudonym = t.pseudonym
     AND m.month = (t.index_month - INTERVAL 1 MONTH)::DATE AND m.status = '01'
),
controls AS (  -- unemployed in the month before, started neither TTK nor coaching by its end
    SELECT c.pseudonym, (m.month + INTERVAL 1 MONTH)::DATE AS index_month
    FROM month_status m
    JOIN (SELECT DISTINCT index_month FROM index_months) i ON m.month = (i.index_month - INTERVAL 1 MONTH)::DATE
    JOIN kb.clients c ON c.pseudonym = m.pseudonym
    WHERE m.status = '01' AND NOT c.temporary_id
      AND (c.first_ttk_start IS NULL OR c.first_ttk_start >= i.index_month + INTERVAL 1 MONTH)
      AND (c.first_coaching_start IS NULL OR c.first_coaching_start >= i.index_month + INTERVAL 1 MONTH)
),
units AS (
    SELECT 'treated' AS role, pseudonym, index_month FROM index_months
    UNION ALL
    SELECT 'control', pseudonym, index_month FROM controls
),
status_features AS (
    SELECT u.role, u.pseudonym, u.index_month,
           count(*) FILTER (WHERE m.month < u.index_month AND m.status IN ('01', '02')) AS prior_unemployed_months,
           count(*) FILTER (WHERE m.month > u.index_month AND m.status IN ('10', '11')) AS employed_months_12m,
           count(*) FILTER (WHERE m.month = (u.index_month + INTERVAL 6 MONTH)::DATE AND m.status = '11') AS employed_open_market_6m,
           count(*) FILTER (WHERE m.month = (u.index_month + INTERVAL 12 MONTH)::DATE AND m.status = '11') AS employed_open_market_12m,
           coalesce(bit_or(1::BIGINT << (datediff('month', u.index_month, m.month) + 12))
                    FILTER (WHERE m.status = '11'), 0) AS open_market_months
    FROM units u
    JOIN month_status m ON m.pseudonym = u.pseudonym
     AND m.month BETWEEN (u.index_month - INTERVAL 12 MONTH)::DATE AND (u.index_month + INTERVAL 12 MONTH)::DATE
    GROUP BY u.role, u.pseudonym, u.index_month
),
costs AS (
    SELECT u.role, u.pseudonym, u.index_month,
           coalesce(sum(b.municipal_share_eur) FILTER (WHERE b.month < u.index_month), 0) AS before_eur,
           coalesce(sum(b.municipal_share_eur) FILTER (WHERE b.month > u.index_month), 0) AS after_eur
    FROM units u
    JOIN kb.benefits b ON b.pseudonym = u.pseudonym AND b.benefit IN ('TMTU', 'TOTU')
     AND b.month BETWEEN (u.index_month - INTERVAL 12 MONTH)::DATE AND (u.index_month + INTERVAL 12 MONTH)::DATE
    GROUP BY u.role, u.pseudonym, u.index_month
)
SELECT u.role, u.pseudonym, u.index_month,
       c.sex, c.birth_year, c.birth_year // 5 AS birth_year_group,
       f.prior_unemployed_months,
       (f.prior_unemployed_months - 1) // 3 + 1 AS prior_band,
       coalesce(k.before_eur, 0)::DECIMAL(14, 2) AS prior_municipal_cost_eur,
       f.employed_open_market_6m::INTEGER AS employed_open_market_6m,
       f.employed_open_market_12m::INTEGER AS employed_open_market_12m,
       f.employed_months_12m::INTEGER AS employed_months_12m,
       (coalesce(k.after_eur, 0) - coalesce(k.before_eur, 0))::DECIMAL(14, 2) AS municipal_cost_change_eur,
       f.open_market_months
FROM units u
JOIN kb.clients c USING (pseudonym)
JOIN status_features f USING (role, pseudonym, index_month)
LEFT JOIN costs k USING (role, pseudonym, index_month)
ORDER BY u.index_month, u.role DESC, u.pseudonym;
